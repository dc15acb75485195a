"""Continuous batching: one thread per model steps every live completion stream together.

A request joins at the next step (after its prefix is primed on its own) and leaves when all its
alternatives end, hit their point budget, or are cancelled. The rows of all streams form one
decoder batch, so a step for 100 people costs little more than a step for one:

    state rows:  [ s1.k0  s1.k1  s2.k0  s3.k0  s3.k1  s3.k2 ]   (one row per alternative)
                   stream 1 (n=2)  stream 2   stream 3 (n=3)

The event loop never runs the model: it submits streams and receives results through ``emit``.
"""

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from sketchrnn.checkpoints import LoadedModel
from sketchrnn.data import S0
from sketchrnn.sampler import next_inputs, sample_points, stroke3_to_inputs


@dataclass
class Stream:
    """One ``complete`` request: n alternatives continuing one primed drawing."""

    id: str
    strokes: np.ndarray  # the drawing so far, stroke-3 in model units (already divided by scale)
    n: int
    max_points: int
    temperature: float
    greedy: bool
    rng: np.random.Generator
    emit: Callable[[list[dict]], None]  # thread-safe: hands messages to the connection
    scale: float  # client pixels per model unit
    origin: tuple[float, float]  # the last drawn point, client coordinates
    started: float = field(default_factory=time.monotonic)
    cancelled: bool = False
    # Per alternative, filled by the worker:
    position: np.ndarray | None = None  # (n, 2) current pen position, client coordinates
    counts: np.ndarray | None = None  # (n,) points sent
    live: np.ndarray | None = None  # (n,) still drawing

    def done_message(self, k: int, reason: str) -> dict:
        ms = round((time.monotonic() - self.started) * 1000, 1)
        return {"type": "done", "id": self.id, "k": int(k), "reason": reason, "points": int(self.counts[k]), "ms": ms}


class ModelWorker:
    def __init__(self, loaded: LoadedModel, max_rows: int = 512):
        self.loaded = loaded
        self.model = loaded.model.eval()
        self.max_rows = max_rows  # alternatives stepped at once; beyond: "overloaded"
        self.pending: queue.Queue[Stream] = queue.Queue()
        self.streams: list[Stream] = []
        self.rows = 0  # rows live or admitted: read by the loop for admission control
        self.lock = threading.Lock()
        self.stopping = False
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

    def _prime(self, stream: Stream):
        """Run the prefix through the decoder for one row, then copy that state to n rows."""
        inputs = stroke3_to_inputs(stream.strokes, 1.0)
        state = self.model.initial_state(1)
        start = torch.tensor(S0)[None]
        if len(inputs) > 1:
            sequence = torch.cat([start, inputs[:-1]])[:, None]
            _, state = self.model.decode(sequence, state)
            start = inputs[-1:]
        elif len(inputs) == 1:
            _, state = self.model.decode(start[:, None], state)
            start = inputs[-1:]
        stream.position = np.tile(np.asarray(stream.origin, dtype=np.float64), (stream.n, 1))
        stream.counts = np.zeros(stream.n, dtype=np.int64)
        stream.live = np.ones(stream.n, dtype=bool)
        return tuple(s.expand(stream.n, -1).clone() for s in state), start.expand(stream.n, 5)

    @torch.no_grad()
    def _run(self) -> None:
        torch.set_num_threads(max(1, torch.get_num_threads()))
        state, inputs = None, None  # batched over all rows of self.streams, in order
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
            for stream in arrivals:
                if stream.cancelled:
                    self._release(stream, [])
                    continue
                s, x = self._prime(stream)
                state = s if state is None else tuple(torch.cat([a, b]) for a, b in zip(state, s))
                inputs = x if inputs is None else torch.cat([inputs, x])
                self.streams.append(stream)
            if not self.streams:
                continue
            # Leave: cancelled streams go before the step.
            keep = [not s.cancelled for s in self.streams]
            if not all(keep):
                state, inputs = self._drop(state, inputs, keep, "cancelled")
                if not self.streams:
                    state = inputs = None
                    continue
            out, state = self.model.decode(inputs[None], state)
            tau = torch.cat([torch.full((s.n, 1), s.temperature) for s in self.streams])
            greedy = torch.cat([torch.full((s.n,), s.greedy) for s in self.streams])
            uniforms = torch.from_numpy(np.concatenate([s.rng.random((s.n, 4)) for s in self.streams]))
            dx, dy, pen = sample_points(self.model.params(out[0]), tau, greedy, uniforms)
            inputs = next_inputs(dx, dy, pen)
            keep = self._deliver(dx.numpy(), dy.numpy(), pen.numpy())
            if not all(keep):
                state, inputs = self._drop(state, inputs, keep, None)
                if not self.streams:
                    state = inputs = None

    def _deliver(self, dx: np.ndarray, dy: np.ndarray, pen: np.ndarray) -> list[bool]:
        """Send each stream its new points; return which streams stay in the batch."""
        keep, row = [], 0
        for stream in self.streams:
            rows = slice(row, row + stream.n)
            row += stream.n
            messages = []
            for k in np.flatnonzero(stream.live):
                r = rows.start + k
                if pen[r] == 2:
                    stream.live[k] = False
                    messages.append(stream.done_message(k, "end"))
                    continue
                stream.position[k] += (dx[r] * stream.scale, dy[r] * stream.scale)
                stream.counts[k] += 1
                x, y = stream.position[k].tolist()
                messages.append({"type": "points", "id": stream.id, "k": int(k),
                                 "points": [[round(x, 2), round(y, 2), int(pen[r] == 1)]]})
                if stream.counts[k] >= stream.max_points:
                    stream.live[k] = False
                    messages.append(stream.done_message(k, "max_points"))
            if messages:
                stream.emit(messages)
            keep.append(bool(stream.live.any()) and not stream.cancelled)
        return keep

    def _drop(self, state, inputs, keep: list[bool], reason: str | None):
        rows, survivors = [], []
        for stream, kept in zip(self.streams, keep):
            rows += [kept] * stream.n
            if kept:
                survivors.append(stream)
            else:
                self._release(stream, [] if reason is None else
                              [stream.done_message(k, reason) for k in np.flatnonzero(stream.live)])
        self.streams = survivors
        index = torch.tensor(rows)
        return tuple(s[index] for s in state), inputs[index]

    def _release(self, stream: Stream, messages: list[dict]) -> None:
        if stream.live is None:  # cancelled before it was primed: every alternative ends here
            stream.counts = np.zeros(stream.n, dtype=np.int64)
            messages = [stream.done_message(k, "cancelled") for k in range(stream.n)]
        else:
            stream.live[:] = False
        if messages:
            stream.emit(messages)
        with self.lock:
            self.rows -= stream.n
