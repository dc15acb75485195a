"""Who may ask for what, and when: a connection's request and drawing rates (token buckets) and
a request's place in its model's batch."""

import random
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


# A request's first point comes after the step under way, its priming (about a step) and its own
# first step: so a budget of B seconds allows steps of B / STEPS_TO_FIRST_POINT.
STEPS_TO_FIRST_POINT = 3
RETRY_AFTER = (0.5, 1.5)  # seconds, spread so that refused clients do not all come back at once


def admit(worker: ModelWorker, stream: Stream, name: str, limits: Limits, previous: Stream | None = None) -> None:
    """Queue ``stream`` on its model's worker; refuse it while the batch is full ("overloaded"),
    or at once ("busy") when with it the batch's steps would be too slow: for its first point
    within ``start_budget`` seconds, or for every drawing's ``min_pace``, even after shedding the
    streams that hold more alternatives than it asks for or have drawn ``shed_after`` points.
    Every connection has one request at a time, each judged by the same rule: the rows it adds.
    ``previous``: the connection's request it replaces, whose rows leave at the next step."""
    freeing = previous.request.n if previous is not None and not previous.released else 0
    step_limit = min(limits.start_budget / STEPS_TO_FIRST_POINT, 1 / limits.min_pace)
    refused = worker.submit(stream, step_limit, freeing, limits.shed_after)
    if refused == "full":
        raise ProtocolError("overloaded", f"model {name!r} is stepping its limit of {worker.max_rows} "
                                          "alternatives; try again shortly")
    if refused == "busy":
        raise ProtocolError("busy", f"model {name!r} is too busy to start this within {limits.start_budget:g} s "
                                    f"and keep drawing {limits.min_pace:g} points a second; ask again after "
                                    "retry_after seconds",
                            retry_after=round(random.uniform(*RETRY_AFTER), 2))
