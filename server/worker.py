"""Continuous batching: one thread per model shape steps one ``sampler.Batch`` that holds every
live completion of every connection on those models, so a step for 100 people costs little more
than a step for one, and 22 of Google's decoders (one shape) share one step rather than fight
for the cores in 22 threads of their own.

A request joins at the next step and leaves when all its alternatives end, hit their point budget,
or are cancelled. The event loop never runs the model: it submits streams; this thread hands each
step's points back to the connections' loops as ``Event``s, and ``app.py`` turns them into
protocol messages.
"""

import asyncio
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import numpy as np
import torch

from sketchrnn.checkpoints import LoadedModel
from sketchrnn.sampler import Batch, LSTMStep, Points, Request

FLAT_ROWS = 32  # up to this many rows a step costs about what one row does (matrix-vector products)
PACE_WEIGHT = 0.1  # weight of the newest step in the running pace: about the last ten steps


class Event(NamedTuple):
    """What happened to one alternative: a point drawn, or its end (``finished`` says why)."""

    k: int  # the alternative
    point: list | None  # [x, y, lift] in the client's coordinates, or None
    finished: str | None  # "end" | "max_points" | "cancelled" | "shed" | "failed", or None
    count: int  # points drawn by the alternative so far


@dataclass(eq=False)  # compared and hashed by identity: each request is its own stream
class Stream:
    """One ``complete`` request of one connection, as the worker sees it."""

    id: str
    model: str  # the model's name
    request: Request  # the prefix, scale and settings, in the client's coordinates
    loop: asyncio.AbstractEventLoop  # the connection's event loop
    format: Callable[["Stream", list[Event]], list[dict]]  # events -> protocol messages, on this thread
    deliver: Callable[[list[dict]], None]  # runs on the connection's loop: queues the messages
    started: float = field(default_factory=time.monotonic)
    cancelled: bool = False
    shed: bool = False  # cut short so that newer requests can start (cancelled too): ends "shed"
    drawn: int = 0  # the most points one of its alternatives has drawn (set by the worker)
    released: bool = False  # its rows are free again (set by the worker)


class ModelWorker:
    """One thread stepping one batch for ``models`` (of one ``LSTMStep.shape``, or one model)."""

    def __init__(self, models: dict[str, LoadedModel], max_rows: int = 512):
        self.models = [loaded.model for loaded in models.values()]
        self.index = {name: i for i, name in enumerate(models)}  # a stream's model -> the batch's
        self.max_rows = max_rows  # alternatives stepped at once; beyond: "overloaded"
        self.pending: queue.Queue[Stream | None] = queue.Queue()
        self.streams: dict[Request, Stream] = {}  # those in the batch
        self.batch = Batch(self.models)
        self.rows = 0  # rows live or admitted: read by the loop for admission control
        # The pace, for load shedding: seconds per step per row, over at least FLAT_ROWS rows
        # (a small batch costs about what one row does), averaged over the last steps.
        self.seconds_per_row = 0.0
        self._last_step: tuple[float, int] | None = None  # (start, rows) of the last step, while busy
        self.lock = threading.Lock()
        self.stopping = False
        self._admitting: list[Stream] = []  # the streams being primed, should that fail
        label = next(iter(models)) + (f"+{len(models) - 1}" if len(models) > 1 else "")
        self.thread = threading.Thread(target=self._run, name=f"model-{label}", daemon=True)
        self.thread.start()

    def step_seconds(self, rows: int) -> float:
        """The expected time of one step with ``rows`` rows, at the pace of the last steps."""
        return self.seconds_per_row * max(rows, FLAT_ROWS)

    def submit(self, stream: Stream, step_limit: float = float("inf"), freeing: int = 0,
               shed_after: float = float("inf")) -> str | None:
        """Queue a stream; else why not: "full" (max_rows) or "busy" (a step with its rows would
        take over ``step_limit`` s; ``freeing``: rows of a cancelled stream that leave at the next
        step). Rather than busy, streams are shed until the step would be fast enough: those
        holding more alternatives than this one asks for (each connection has one request, so
        they hold more than their share of the rows), and those that have drawn ``shed_after``
        points or more; most alternatives first, then most drawn. Under overload the least served
        get the machine, and a newcomer's first ending is never cut for a longer or wider one."""
        n = stream.request.n
        with self.lock:
            if self.rows + n > self.max_rows:
                return "full"
            rows = self.rows - freeing + n
            if rows > n and self.step_seconds(rows) > step_limit:
                victims = []
                # list(): one atomic copy, as the worker thread adds and removes streams meanwhile.
                served = sorted((s for s in list(self.streams.values())
                                 if not s.cancelled and (s.request.n > n or s.drawn >= shed_after)),
                                key=lambda s: (-s.request.n, -s.drawn))
                for victim in served:
                    if rows <= n or self.step_seconds(rows) <= step_limit:
                        break
                    victims.append(victim)
                    rows -= victim.request.n
                if rows > n and self.step_seconds(rows) > step_limit:
                    return "busy"
                for victim in victims:
                    victim.shed = victim.cancelled = True
            self.rows += n
        self.pending.put(stream)
        return None

    def cancel_all(self) -> None:
        """Mark every stream, queued or drawing, cancelled: each alternative then ends "cancelled"."""
        with self.pending.mutex:
            queued = [s for s in self.pending.queue if s is not None]
        for stream in [*queued, *list(self.streams.values())]:
            stream.cancelled = True

    def stop(self) -> None:
        self.stopping = True
        self.pending.put(None)  # wake the thread
        self.thread.join(timeout=5)

    # --- the worker thread ----------------------------------------------------------------------

    def _run(self) -> None:
        """Step forever; a failure ends the streams in the batch, not the worker."""
        while not self.stopping:
            try:
                self._serve()
            except Exception:
                logging.getLogger("sketchrnn.server").exception("model worker failed; its streams end")
                failed = [*self.streams.values(), *(s for s in self._admitting if s.request not in self.streams)]
                for stream in failed:
                    self._release(stream, [Event(k, None, "failed", 0) for k in range(stream.request.n)])
                self.streams, self.batch, self._admitting = {}, Batch(self.models), []

    def _arrivals(self) -> list[Stream]:
        """Everything queued; blocks only when there is nothing to step."""
        arrivals = []
        try:
            item = self.pending.get(timeout=0 if self.streams else None)
            while item is not None:
                arrivals.append(item)
                item = self.pending.get_nowait()
        except queue.Empty:
            pass
        return arrivals

    @torch.no_grad()
    def _serve(self) -> None:
        while not self.stopping:
            arrivals = self._arrivals()
            if self.stopping:
                break
            cancelled = [s for s in arrivals if s.cancelled]  # read once: the flag may flip meanwhile
            for stream in cancelled:
                self._release(stream, [Event(k, None, "cancelled", 0) for k in range(stream.request.n)])
            arrivals = [s for s in arrivals if s not in cancelled]
            if arrivals:
                self._admitting = arrivals
                for model in sorted({self.index[s.model] for s in arrivals}):
                    self.batch.add([s.request for s in arrivals if self.index[s.model] == model], model)
                self.streams.update((s.request, s) for s in arrivals)
            self._admitting = []
            self._cancel([s for s in self.streams.values() if s.cancelled])
            if not len(self.batch):
                self._last_step = None  # idle time is not the pace
                continue
            started = time.perf_counter()
            if self._last_step is not None:
                # The pace is what a stream waits between its points: the whole turn since the last
                # step (that step, its messages, priming arrivals, cancels, waiting for the cores or
                # the GIL); on a busy machine several times the step alone.
                self._pace(started - self._last_step[0], self._last_step[1])
            points = self.batch.step()
            if self._last_step is None:  # the first step after idle: its own time is all there is yet
                self._pace(time.perf_counter() - started, len(points.rows))
            self._last_step = (started, len(points.rows))
            self._deliver(points)
            for request in self.batch.drop_finished():
                self._release(self.streams.pop(request), [])

    def _pace(self, seconds: float, rows: int) -> None:
        """Fold one turn of ``seconds`` for ``rows`` rows into the running pace."""
        self.seconds_per_row += PACE_WEIGHT * (seconds / max(rows, FLAT_ROWS) - self.seconds_per_row)

    def _cancel(self, streams: list[Stream]) -> None:
        """Take cancelled streams out before the step; their live alternatives end "cancelled" (or
        "shed")."""
        if not streams:
            return
        b = self.batch
        for stream in streams:
            events = [Event(k, None, "shed" if stream.shed else "cancelled", int(count)) for (r, k), live, count
                      in zip(b.rows, b.live, b.count) if r is stream.request and live]
            self._release(stream, events)
            del self.streams[stream.request]
        b.remove([s.request for s in streams])

    def _deliver(self, points: Points) -> None:
        """Hand each stream its events: one event-loop wake-up per step for all streams."""
        positions = np.round(points.position, 2).tolist()
        lifted = points.lifted.tolist()
        events: dict[Stream, list[Event]] = {}
        for r in np.flatnonzero(points.drawn | points.ended).tolist():
            request, k = points.rows[r]
            stream = self.streams[request]
            out = events.setdefault(stream, [])
            count = int(points.count[r])
            stream.drawn = max(stream.drawn, count)
            if points.drawn[r]:
                out.append(Event(k, [*positions[r], int(lifted[r])], None, count))
            if points.ended[r] or points.capped[r]:
                out.append(Event(k, None, "end" if points.ended[r] else "max_points", count))
        self._hand_over(list(events.items()))

    def _release(self, stream: Stream, events: list[Event]) -> None:
        if events:
            self._hand_over([(stream, events)])
        with self.lock:
            self.rows -= stream.request.n
            stream.released = True

    @staticmethod
    def _hand_over(handoff: list[tuple[Stream, list[Event]]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list] = {}
        for stream, events in handoff:
            by_loop.setdefault(stream.loop, []).append((stream.deliver, stream.format(stream, events)))
        for loop, items in by_loop.items():
            loop.call_soon_threadsafe(_deliver_all, items)


def by_shape(models: dict[str, LoadedModel], max_rows: int) -> dict[str, ModelWorker]:
    """A worker per shape of model (``LSTMStep.shape``; one each for those that step through
    torch), by model name."""
    groups: dict[object, dict[str, LoadedModel]] = {}
    for name, loaded in models.items():
        shape = LSTMStep.shape(loaded.model)
        groups.setdefault(name if shape is None else shape, {})[name] = loaded
    workers = {}
    for group in groups.values():
        workers.update(dict.fromkeys(group, ModelWorker(group, max_rows)))
    return workers


def _deliver_all(items) -> None:
    for deliver, messages in items:
        deliver(messages)
