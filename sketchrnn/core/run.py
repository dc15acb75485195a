"""A training run's bookkeeping, for the engine's loop: its folder (checkpoints, metrics log),
its clock over every invocation, starting or resuming it, and stopping on a signal."""

import dataclasses
import json
import math
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm import tqdm

from sketchrnn.core import distributed
from sketchrnn.core.checkpoint import (
    CheckpointError,
    atomic_file,
    load_checkpoint,
    rank_seed,
    rng_state,
    save_atomic,
    set_rng_state,
)


@dataclass
class Progress:
    """What a checkpoint restores of the loop itself."""

    step: int = 0
    best: float = math.inf  # the lowest validation loss so far (it picks best.pt)
    nonfinite: int = 0  # steps skipped for a non-finite loss or gradient
    carry: Any = None  # the recurrent state crossing batches (truncated BPTT), or None
    earlier_seconds: float = 0.0  # training time of the run's earlier invocations


class Run:
    """One run folder, ``last.pt``, ``best.pt`` and ``metrics.jsonl``; under torchrun rank 0
    alone writes, the others only take part in the collectives."""

    def __init__(self, out_dir: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 group: distributed.Group, device: torch.device, identity: dict):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.model, self.optimizer, self.group, self.device = model, optimizer, group, device
        self.identity = identity  # {"kind", "config", **extras}: what one file needs to rebuild the model
        self.last, self.best, self.metrics = (self.out_dir / n for n in ("last.pt", "best.pt", "metrics.jsonl"))
        self.progress = Progress()
        self.started = time.monotonic()  # the --minutes budget counts this invocation only
        self.log = None
        if group.main:
            for stale in self.out_dir.glob("*.pt*.tmp"):  # a save cut short by kill -9: never a checkpoint
                stale.unlink()

    def start(self, seed: int) -> Progress:
        torch.manual_seed(rank_seed(seed, self.group.rank))
        if self.group.main:  # starting over (check_run_folder let it): nothing of an earlier run stays
            self.best.unlink(missing_ok=True)
            self.metrics.unlink(missing_ok=True)
            self.log = self.metrics.open("a")
        return self.progress

    def resume(self, seed: int) -> Progress:
        if not self.last.exists():
            raise CheckpointError(f"{self.last}: nothing to resume yet (no checkpoint was written); "
                                  "start the run without --resume")
        ckpt = load_checkpoint(self.last, self.identity["kind"])
        check_same_run(ckpt, self.identity, self.last)
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        p = self.progress = Progress(ckpt["step"], ckpt["best"], ckpt["nonfinite"], None, ckpt["elapsed"])
        ranks = ckpt.get("ranks", [{"rng": ckpt["rng"], "carry": ckpt["carry"]}])
        if len(ranks) == self.group.world:
            p.carry = map_state(ranks[self.group.rank]["carry"], lambda t: t.to(self.device))
            set_rng_state(ranks[self.group.rank]["rng"])
        else:  # written by another number of processes: the carried state was theirs
            if self.group.main:
                tqdm.write(f"resuming with {self.group.world} processes a run written by {len(ranks)}: "
                           "the data order stays exact; dropout draws and carried state start afresh")
            torch.manual_seed(rank_seed(seed + p.step, self.group.rank))
        if self.group.main:
            if self.metrics.exists():  # rows logged after the checkpoint will be logged again
                rows = [line for line in self.metrics.read_text().splitlines() if json.loads(line)["step"] <= p.step]
                with atomic_file(self.metrics, "w") as f:
                    f.write("".join(row + "\n" for row in rows))
            self.log = self.metrics.open("a")
        return p

    def clock(self, minutes: float) -> float:
        """The fraction of this invocation's time budget spent (0 without one)."""
        return (time.monotonic() - self.started) / (minutes * 60) if minutes else 0.0

    def elapsed(self) -> float:
        """Training seconds over all invocations of this run."""
        return self.progress.earlier_seconds + time.monotonic() - self.started

    def write_row(self, row: dict) -> None:
        self.log.write(json.dumps({**row, "elapsed": round(self.elapsed(), 2)}) + "\n")
        self.log.flush()

    def rank_states(self) -> list[dict]:
        """Every rank's RNG and carried state, for the checkpoint (a collective: every rank calls
        it at the same step)."""
        carry = map_state(self.progress.carry, torch.Tensor.cpu)
        return distributed.gather({"rng": rng_state(), "carry": carry}, self.group)

    def save(self, path: Path, ranks: list[dict]) -> None:
        p = self.progress
        save_atomic({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "step": p.step,
                     "best": p.best, "nonfinite": p.nonfinite, "carry": ranks[0]["carry"], "elapsed": self.elapsed(),
                     "rng": ranks[0]["rng"], **({"ranks": ranks} if len(ranks) > 1 else {}), **self.identity}, path)

    def validate(self, evaluate: Callable | None, after_eval: Callable | None, ranks: list[dict]) -> dict:
        """Rank 0 only (the others go on to the next step and wait for it there): metrics in eval
        mode, without gradients, the RNG forked so training draws the same next; best.pt on a
        new best."""
        if evaluate is None:
            return {}
        self.model.eval()
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.no_grad(), torch.random.fork_rng(devices=devices):
            metrics = evaluate(self.model)
            if after_eval is not None:
                after_eval(self.model, self.progress.step, self.out_dir)
        self.model.train()
        self.write_row({"step": self.progress.step, "split": "valid", **metrics})
        if metrics["loss"] < self.progress.best:
            self.progress.best = metrics["loss"]
            self.save(self.best, ranks)
        return metrics

    def validate_and_save(self, evaluate: Callable | None, after_eval: Callable | None) -> dict:
        ranks = self.rank_states()
        if not self.group.main:
            return {}
        metrics = self.validate(evaluate, after_eval, ranks)
        self.save(self.last, ranks)
        return metrics

    def close(self) -> None:
        if self.log is not None:
            self.log.close()


def check_run_folder(out_dir: str | Path, resume: bool, overwrite: bool) -> None:
    """Before any work: a folder that holds a run is continued (``resume``) or deliberately
    started over (``overwrite``), never replaced by accident."""
    out_dir = Path(out_dir)
    if resume and overwrite:
        raise ValueError("--resume continues the run in --out, --overwrite starts it over: give one of them")
    if out_dir.exists() and not out_dir.is_dir():
        raise CheckpointError(f"{out_dir}: a file, not a run folder")
    held = [name for name in ("last.pt", "metrics.jsonl") if (out_dir / name).exists()]
    if held and not resume and not overwrite:
        raise CheckpointError(f"{out_dir}: already holds a run ({', '.join(held)}); --resume continues it, "
                              "--overwrite starts it over (or choose another --out)")


def check_same_run(ckpt: dict, identity: dict, path: Path) -> None:
    """A resumed run is the run it continues: the same model config and the same data (the
    checkpoint's extras: scale factor, classes, ...). The training config (steps, lr, ...) may
    change. Anything else is refused, naming the difference, before a weight is loaded."""
    def shown(value) -> str:
        text = repr(value)
        return text if len(text) <= 60 else f"<{len(value)} items>" if hasattr(value, "__len__") else text[:57] + "..."

    def same(before, now) -> bool:
        if isinstance(now, float) and isinstance(before, (int, float)):
            return math.isclose(before, now, rel_tol=1e-6)
        return before == now or (isinstance(now, (list, tuple)) and list(before) == list(now))

    differences = []
    for key, now in identity.items():
        if key in ("kind", "train_config") or key not in ckpt:  # older checkpoints lack some extras
            continue
        if isinstance(now, dict) and isinstance(ckpt[key], dict):  # the model config: field by field
            pairs = [(name if key == "config" else f"{key}.{name}", ckpt[key].get(name), value)
                     for name, value in now.items() if name != "engine"]  # a config's own training settings
        else:
            pairs = [(key, ckpt[key], now)]
        differences += [f"{name} {shown(before)} in the run, {shown(value)} now"
                        for name, before, value in pairs if not same(before, value)]
    if differences:
        raise CheckpointError(f"{path}: --resume with another model or data: {'; '.join(differences)}. Resume with "
                              "the run's settings, or start over with --overwrite (or another --out)")


class RunningLoss:
    """The mean training loss since the last log row, over every rank."""

    def __init__(self, group: distributed.Group, step: int):
        self.group, self.total, self.count = group, 0.0, 0
        self.taken_at = step  # the step of the last row: the same on every rank

    def add(self, loss: torch.Tensor) -> None:
        if torch.isfinite(loss):  # the rank's own loss: under DDP only the average gradient must be finite
            self.total += loss.item()
            self.count += 1

    def take(self, step: int) -> float:
        """The mean so far, and start afresh (a collective under torchrun: each rank saw its own
        shard, the log shows their mean)."""
        means = distributed.gather(self.total / self.count if self.count else math.nan, self.group)
        self.total, self.count, self.taken_at = 0.0, 0, step
        finite = [m for m in means if math.isfinite(m)]
        return sum(finite) / len(finite) if finite else math.nan


def map_state(obj, fn: Callable[[torch.Tensor], torch.Tensor]):
    """``fn`` applied to every tensor in a batch or carried state: tensors, tuples, lists and
    dataclasses of them (anything else passes through). Moves batches to the device, and cuts
    the graph behind a carried state (truncated BPTT) with ``fn = Tensor.detach``."""
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, (tuple, list)):
        return type(obj)(map_state(o, fn) for o in obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(obj, **{f.name: map_state(getattr(obj, f.name), fn)
                                           for f in dataclasses.fields(obj) if f.init})
    return obj


@contextmanager
def stop_on_signals():
    """Ctrl-C (SIGINT) or SIGTERM (systemd, Docker, Kubernetes) asks the loop to stop at the end
    of the current step, so the checkpoint is consistent; a second Ctrl-C interrupts at once."""
    requested = {"stop": False}

    def handler(signum, frame):
        if requested["stop"] and signum == signal.SIGINT:
            raise KeyboardInterrupt
        requested["stop"] = True

    try:
        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: leave the signals alone
        yield requested
        return
    try:
        yield requested
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
