"""Who may ask for what, and when: a connection's request and drawing rates (token buckets) and
a request's place in its model's batch."""

import time

from .protocol import Limits, ProtocolError
from .worker import ModelWorker, Stream


class TokenBucket:
    """``rate`` requests a second sustained, bursts of twice that."""

    def __init__(self, rate: float):
        self.rate, self.allowance, self.last = rate, 2 * rate, time.monotonic()

    def take(self, cost: float = 1.0) -> bool:
        now = time.monotonic()
        self.allowance = min(2 * self.rate, self.allowance + (now - self.last) * self.rate)
        self.last = now
        if self.allowance < cost:
            return False
        self.allowance -= cost
        return True


class Rates:
    """One connection's two budgets: messages, and points of drawing (reading a drawing costs
    the server far more than reading a message)."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.messages = TokenBucket(limits.requests_per_second)
        self.drawing = TokenBucket(limits.points_per_second)

    def take_message(self) -> None:
        if not self.messages.take():
            raise ProtocolError("rate_limited", f"more than {self.limits.requests_per_second:g} "
                                                "requests per second on this connection")

    def take_points(self, count: int) -> None:
        if not self.drawing.take(count):
            raise ProtocolError("rate_limited", f"more than {self.limits.points_per_second:g} points of drawing per "
                                                "second on this connection")


def admit(worker: ModelWorker, stream: Stream, name: str) -> None:
    """Queue ``stream`` on its model's worker, or refuse it while the batch is full."""
    if not worker.submit(stream):
        raise ProtocolError("overloaded", f"model {name!r} is stepping its limit of {worker.max_rows} "
                                          "alternatives; try again shortly")
