"""Continuous batching: one thread per model steps every live completion stream together.

A request joins at the next step (after its prefix is primed on its own) and leaves when all its
alternatives end, hit their point budget, or are cancelled. The rows of all streams form one
decoder batch, so a step for 100 people costs little more than a step for one:

    state rows:  [ s1.k0  s1.k1  s2.k0  s3.k0  s3.k1  s3.k2 ]   (one row per alternative)
                   stream 1 (n=2)  stream 2   stream 3 (n=3)

The event loop never runs the model: it submits streams; the worker hands results back to it.
"""

import asyncio
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from sketchrnn.checkpoints import LoadedModel
from sketchrnn.data import S0
from sketchrnn.sampler import feed_prefix, next_inputs, sample_points, stroke3_to_inputs


@dataclass(eq=False)  # compared and hashed by identity: each request is its own stream
class Stream:
    """One ``complete`` request: n alternatives continuing one primed drawing."""

    id: str
    strokes: np.ndarray  # the drawing so far, stroke-3 in model units (already divided by scale)
    n: int
    max_points: int
    temperature: float
    greedy: bool
    rng: np.random.Generator
    loop: asyncio.AbstractEventLoop  # the connection's event loop
    deliver: Callable[[list[dict]], None]  # runs on that loop: queues messages for the client
    scale: float  # client pixels per model unit
    origin: tuple[float, float]  # the last drawn point, client coordinates
    started: float = field(default_factory=time.monotonic)
    cancelled: bool = False

    def done_message(self, k: int, reason: str, points: int) -> dict:
        ms = round((time.monotonic() - self.started) * 1000, 1)
        return {"type": "done", "id": self.id, "k": int(k), "reason": reason, "points": int(points), "ms": ms}


class Rows:
    """Per-row bookkeeping of the batch, as arrays aligned with the decoder's state rows."""

    def __init__(self):
        self.owner: list[tuple[Stream, int]] = []  # (stream, alternative k) of each row
        self.position = np.zeros((0, 2))  # pen position, client coordinates
        self.count = np.zeros(0, dtype=np.int64)  # points sent
        self.live = np.zeros(0, dtype=bool)
        self.scale = np.zeros(0)
        self.cap = np.zeros(0, dtype=np.int64)  # max_points
        self.temperature = torch.zeros(0, 1)
        self.greedy = torch.zeros(0, dtype=torch.bool)

    def add(self, stream: Stream) -> None:
        n = stream.n
        self.owner += [(stream, k) for k in range(n)]
        self.position = np.concatenate([self.position, np.tile(np.asarray(stream.origin, dtype=float), (n, 1))])
        self.count = np.concatenate([self.count, np.zeros(n, dtype=np.int64)])
        self.live = np.concatenate([self.live, np.ones(n, dtype=bool)])
        self.scale = np.concatenate([self.scale, np.full(n, stream.scale)])
        self.cap = np.concatenate([self.cap, np.full(n, stream.max_points)])
        self.temperature = torch.cat([self.temperature, torch.full((n, 1), stream.temperature)])
        self.greedy = torch.cat([self.greedy, torch.full((n,), stream.greedy)])

    def keep(self, mask: np.ndarray) -> None:
        self.owner = [o for o, kept in zip(self.owner, mask) if kept]
        for name in ("position", "count", "live", "scale", "cap"):
            setattr(self, name, getattr(self, name)[mask])
        index = torch.from_numpy(mask)
        self.temperature, self.greedy = self.temperature[index], self.greedy[index]


class ModelWorker:
    def __init__(self, loaded: LoadedModel, max_rows: int = 512):
        self.loaded = loaded
        self.model = loaded.model.eval()
        self.max_rows = max_rows  # alternatives stepped at once; beyond: "overloaded"
        self.pending: queue.Queue[Stream] = queue.Queue()
        self.streams: list[Stream] = []  # in row order; each owns stream.n consecutive rows
        self.batch = Rows()
        self.rows = 0  # rows live or admitted: read by the loop for admission control
        self.lock = threading.Lock()
        self.stopping = False
        self._admitting: list[Stream] = []  # the streams being primed, should that fail
        self.thread = threading.Thread(target=self._run, name=f"model-{loaded.name}", daemon=True)
        self.thread.start()

    def submit(self, stream: Stream) -> bool:
        """Queue a stream; False if the batch is full."""
        with self.lock:
            if self.rows + stream.n > self.max_rows:
                return False
            self.rows += stream.n
        self.pending.put(stream)
        return True

    def stop(self) -> None:
        self.stopping = True
        self.pending.put(None)  # wake the thread
        self.thread.join(timeout=5)

    # --- the worker thread ----------------------------------------------------------------------

    def _prime(self, arrivals: list[Stream]):
        """Run every arrival's prefix through the decoder in one padded call, then copy each
        stream's state to its n rows."""
        prefixes = [stroke3_to_inputs(s.strokes, 1.0) for s in arrivals]
        first = torch.tensor(S0).expand(len(arrivals), 5)
        state, pending = feed_prefix(self.model, self.model.initial_state(len(arrivals)), first, prefixes)
        repeats = torch.tensor([s.n for s in arrivals])
        return tuple(h.repeat_interleave(repeats, 0) for h in state), pending.repeat_interleave(repeats, 0)

    def _run(self) -> None:
        """Step forever; a failure ends the streams in the batch with an error, not the worker."""
        while not self.stopping:
            try:
                self._serve()
            except Exception:
                logging.getLogger("sketchrnn.server").exception("model worker failed; its streams end")
                failed = self.streams + [s for s in self._admitting if s not in self.streams]
                for stream in failed:
                    self._release(stream, [{"type": "error", "id": stream.id, "code": "internal",
                                            "message": "the model failed on this request; see the server log"}])
                self.streams, self.batch, self._admitting = [], Rows(), []

    @torch.no_grad()
    def _serve(self) -> None:
        state, inputs = None, None  # batched over all rows, in stream order
        while not self.stopping:
            # Admit: block only when there is nothing to step.
            arrivals = []
            try:
                item = self.pending.get(timeout=None if not self.streams else 0)
                while item is not None:
                    arrivals.append(item)
                    item = self.pending.get_nowait()
            except queue.Empty:
                pass
            if self.stopping:
                break
            cancelled = [s for s in arrivals if s.cancelled]  # read once: the flag may flip meanwhile
            for stream in cancelled:
                self._release(stream, [stream.done_message(k, "cancelled", 0) for k in range(stream.n)])
            arrivals = [s for s in arrivals if s not in cancelled]
            if arrivals:
                self._admitting = arrivals
                s, x = self._prime(arrivals)
                state = s if state is None else tuple(torch.cat([a, b]) for a, b in zip(state, s))
                inputs = x if inputs is None else torch.cat([inputs, x])
                for stream in arrivals:
                    self.streams.append(stream)
                    self.batch.add(stream)
            self._admitting = []
            if not self.streams:
                continue
            # Leave: cancelled streams go before the step.
            if any(s.cancelled for s in self.streams):
                state, inputs = self._drop(state, inputs, "cancelled")
                if not self.streams:
                    state = inputs = None
                    continue
            out, state = self.model.decode(inputs[None], state)
            uniforms = torch.from_numpy(np.concatenate([s.rng.random((s.n, 4)) for s in self.streams]))
            dx, dy, pen = sample_points(self.model.params(out[0]), self.batch.temperature, self.batch.greedy, uniforms)
            inputs = next_inputs(dx, dy, pen)
            if self._deliver(dx.numpy(), dy.numpy(), pen.numpy()):
                state, inputs = self._drop(state, inputs, None)
                if not self.streams:
                    state = inputs = None

    def _deliver(self, dx: np.ndarray, dy: np.ndarray, pen: np.ndarray) -> bool:
        """Advance every row's pen, then hand each stream its messages: one event-loop wake-up
        per step for all streams. Returns whether any alternative finished."""
        b = self.batch
        was_live = b.live.copy()
        ended = was_live & (pen == 2)
        moving = was_live & ~ended
        b.position[moving] += np.column_stack([dx, dy])[moving] * b.scale[moving, None]
        b.count[moving] += 1
        capped = moving & (b.count >= b.cap)
        b.live &= ~(ended | capped)
        positions = np.round(b.position, 2).tolist()
        lifts = (pen == 1).tolist()
        messages: dict[Stream, list[dict]] = {}
        for r in np.flatnonzero(was_live).tolist():
            stream, k = b.owner[r]
            out = messages.setdefault(stream, [])
            if moving[r]:
                out.append({"type": "points", "id": stream.id, "k": k, "points": [[*positions[r], int(lifts[r])]]})
            if ended[r] or capped[r]:
                out.append(stream.done_message(k, "end" if ended[r] else "max_points", b.count[r]))
        self._hand_over(list(messages.items()))
        return bool((ended | capped).any())

    def _drop(self, state, inputs, reason: str | None):
        """Remove streams that are cancelled or have no live row; free their rows."""
        b = self.batch
        live_streams = {o[0] for o, live in zip(b.owner, b.live) if live}
        gone = {s for s in self.streams if s.cancelled or s not in live_streams}
        keep = np.array([owner[0] not in gone for owner in b.owner])
        for stream in gone:
            rows = [r for r, (s, _) in enumerate(b.owner) if s is stream]
            final = [] if reason is None else [stream.done_message(b.owner[r][1], reason, b.count[r])
                                               for r in rows if b.live[r]]
            self._release(stream, final)
        self.streams = [s for s in self.streams if s not in gone]
        b.keep(keep)
        index = torch.from_numpy(keep)
        return tuple(s[index] for s in state), inputs[index]

    def _release(self, stream: Stream, messages: list[dict]) -> None:
        if messages:
            self._hand_over([(stream, messages)])
        with self.lock:
            self.rows -= stream.n

    @staticmethod
    def _hand_over(handoff: list[tuple[Stream, list[dict]]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list] = {}
        for stream, messages in handoff:
            by_loop.setdefault(stream.loop, []).append((stream.deliver, messages))
        for loop, items in by_loop.items():
            loop.call_soon_threadsafe(_deliver_all, items)

def _deliver_all(items) -> None:
    for deliver, messages in items:
        deliver(messages)
