"""The one training loop every model here uses: BPTT steps on a step and/or time budget, with
validation, a metrics log, atomic checkpoints, exact resume and a guard against non-finite loss.

A model plugs in two functions:
    batch_fn(step) -> batch              deterministic in step, so a resumed run sees the same data
    loss_fn(model, batch, carry, step) -> (loss, carry, metrics)
The engine owns the device: it moves the model, every batch (tensors, or tuples, lists and
dataclasses of them) and the carry there. ``carry`` is whatever state crosses batches: None for
full BPTT over whole sequences; for truncated BPTT, the recurrent state after a chunk of k steps,
which the engine detaches after every step (so backward stops at the chunk boundary) and
checkpoints. Every checkpoint is ``{"kind": ..., "config": <the model's config>, ...}``.
Under torchrun the same loop runs data-parallel (``core/distributed.py``): each rank trains on its
shard of every batch, rank 0 alone validates, logs and writes checkpoints.
"""

import dataclasses
import json
import math
import os
import pickle
import random
import re
import signal
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from sketchrnn.core import distributed
from sketchrnn.core.layers import compile_steps


def option(default, help: str, **argparse_extra):
    """A config field that is also a command-line flag: the default lives here, once, beside the
    help the flag shows (``choices=...`` and other argparse keywords pass through)."""
    return dataclasses.field(default=default, metadata={"help": help, **argparse_extra})


@dataclass
class TrainConfig:
    """What the engine needs to run any model; each model's config composes one, with its own
    defaults (Magenta's for Sketch-RNN, the 5-minute recipe for text)."""

    steps: int = option(10_000, "stop after this many optimizer steps in all; 0: no step limit")
    minutes: float = option(0.0, "stop after this many minutes of this invocation; 0: no time limit")
    lr: float = option(1e-3, "Adam learning rate at step 0")
    lr_decay: float = option(1.0, "per-step decay of (lr - min_lr) toward --min-lr; 1.0 keeps lr constant")
    min_lr: float = option(0.0, "the floor that the decayed learning rate approaches")
    # With --minutes the fraction is of this invocation's clock, so a short run still ends
    # annealed (0.3: 1.510 -> 1.496 nats/char in a 5-minute text run).
    warmdown: float = option(0.0, "over this last fraction of the budget lr falls linearly to --min-lr; 0: off")
    # bf16 is about 2x on CPUs with AMX; weights, Adam and validation stay fp32.
    precision: str = option("fp32", "fp32: exact; bf16: bfloat16 autocast; auto: bf16 where the hardware "
                            "has fast bf16 (AMX, CUDA)", choices=("fp32", "bf16", "auto"))
    clip: float = option(1.0, "gradient clipping threshold; 0 turns clipping off")
    clip_mode: str = option("norm", "norm: clip the global L2 norm; value: each element (Magenta's choice)",
                            choices=("norm", "value"))
    eval_every: int = option(500, "validate and write checkpoints every this many steps")
    log_every: int = option(50, "one metrics-log row every this many steps (at most --eval-every)")
    max_nonfinite: int = option(100, "give up after this many skipped steps with non-finite loss or gradients")
    seed: int = option(0, "seeds initialisation, dropout and the data order")
    device: str = option("auto", "where to train: cpu, cuda, or auto (cuda where there is one); "
                         "checkpoints always load on the CPU")
    # Measured on this project's 2-core CPU: no faster (bench_cells.py --compile); meant for GPUs,
    # where an unrolled cell's dozen small kernels a step are launch-bound.
    compile: bool = option(False, "compile each unrolled cell's step with torch.compile (steps eagerly, "
                           "with a warning, where no compiler works)")


def bf16_is_fast(device: torch.device) -> bool:
    """bfloat16 matmuls run faster than float32 here: AMX tiles on the CPU (Sapphire Rapids and
    later), or a CUDA GPU that supports bf16."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)  # torch's own probe; absent on old builds
    return device.type == "cpu" and amx is not None and amx()


def learning_rate(cfg: TrainConfig, step: int, done: float = 0.0) -> float:
    """Magenta sketch_rnn's schedule, (lr - min_lr) * decay^step + min_lr, scaled down linearly to
    min_lr over the warmdown: the last ``cfg.warmdown`` of the budget (``done`` = fraction spent)."""
    lr = (cfg.lr - cfg.min_lr) * cfg.lr_decay**step + cfg.min_lr
    if cfg.warmdown > 0 and done > 1 - cfg.warmdown:
        lr = cfg.min_lr + (lr - cfg.min_lr) * max(0.0, (1 - done) / cfg.warmdown)
    return lr


def exponential_anneal(step: int, start: float, end: float, rate: float) -> float:
    """end - (end - start) * rate^step: starts at ``start``, approaches ``end`` (Magenta's KL
    weight schedule, rate 0.99995 there)."""
    return end - (end - start) * rate**step


def save_atomic(obj: Any, path: Path) -> None:
    """torch.save to a temp file in the same folder, then rename: a crash mid-write leaves the
    previous checkpoint intact, never a truncated one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make checkpoints private
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class CheckpointError(ValueError):
    """A file that is not a checkpoint of the kind asked for; the message names the file."""


def load_checkpoint(path: str | Path, kind: str | None = None) -> dict:
    """Load a checkpoint on the CPU, whatever device wrote it, refusing anything but tensors and
    plain data: a file someone passes around must not run code when opened (a pickle can). With
    ``kind``, a checkpoint of another kind is refused by name."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        what = f" ({found.group(1)})" if found else ""
        raise CheckpointError(f"{path}: refused: it holds pickled objects{what}, not only tensors and plain data; "
                              "loading it could run code") from None
    except Exception as e:  # a truncated or foreign file fails in many ways inside torch.load
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(ckpt, dict) or "kind" not in ckpt:
        raise CheckpointError(f"{path}: not a sketchrnn checkpoint (no \"kind\")")
    if kind is not None and ckpt["kind"] != kind:
        raise CheckpointError(f"{path}: a {ckpt['kind']} checkpoint, not a {kind} one")
    return ckpt


def resolve_device(name: str) -> torch.device:
    """"auto" -> cuda where a GPU is visible, else cpu; anything else as torch names it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ValueError(f"device {name!r}: not one torch knows; use cpu, cuda, cuda:N or auto") from None


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


def _rank_seed(seed: int, rank: int) -> int:
    """Rank 0 keeps the seed (a one-process run is unchanged); other ranks draw other dropout masks."""
    return seed if rank == 0 else int(np.random.SeedSequence((seed, rank)).generate_state(1)[0])


def _rng_state() -> dict:
    """Every generator's state in types a weights-only load accepts (tensors, numbers, tuples)."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, gauss)}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, position, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextmanager
def _stop_on_signals():
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


def train(
    model: torch.nn.Module,
    cfg: TrainConfig,
    out_dir: str | Path,
    *,
    kind: str,
    config: dict,
    batch_fn: Callable[[int], Any],
    loss_fn: Callable[..., tuple[torch.Tensor, Any, dict]],
    evaluate: Callable[[torch.nn.Module], dict] | None = None,
    after_eval: Callable[[torch.nn.Module, int, Path], None] | None = None,
    extras: dict | None = None,
    resume: bool = False,
    progress: bool = True,
    shard_batch: Callable[[Any, distributed.Group], Any] | None = None,
) -> dict:
    """Train ``model`` in place; return a summary dict.

    ``evaluate(model)`` returns metrics with a "loss" key (lower is better; picks ``best.pt``);
    ``after_eval(model, step, out_dir)`` may render samples. Both run in eval mode, without
    gradients, with the RNG forked so they never change what training draws next.
    Every checkpoint holds ``kind`` (what model it is: "sketch", "text", ...), ``config`` (that
    model's own config as a plain dict) and ``extras`` (the whole training config, scale factor,
    class list, ...), so one file rebuilds the model.
    ``shard_batch(batch, group)`` cuts this rank's part out of a whole batch (torchrun only).
    """
    if cfg.clip_mode not in ("norm", "value"):
        raise ValueError(f"clip_mode must be 'norm' or 'value', got {cfg.clip_mode!r}")
    if cfg.steps <= 0 and cfg.minutes <= 0:
        raise ValueError("give a budget: steps > 0 or minutes > 0")
    if cfg.precision not in ("fp32", "bf16", "auto"):
        raise ValueError(f"precision must be 'fp32', 'bf16' or 'auto', got {cfg.precision!r}")
    if not 0 <= cfg.warmdown <= 1:
        raise ValueError(f"warmdown is a fraction of the budget in [0, 1], got {cfg.warmdown}")
    group = distributed.current()
    if group.world > 1 and shard_batch is None:
        raise ValueError(f"this model trains in one process only; run it without torchrun (WORLD_SIZE={group.world})")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = distributed.join(group, resolve_device(cfg.device))
    progress = progress and group.main
    bf16 = cfg.precision == "bf16" or cfg.precision == "auto" and bf16_is_fast(device)
    model.to(device).train()
    if cfg.compile:
        compile_steps(model)
    # DDP averages the gradients over the ranks inside backward; evaluation and checkpoints use
    # the plain model.
    net = DistributedDataParallel(model) if group.world > 1 else model
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    step, best, nonfinite, carry, earlier_seconds = 0, math.inf, 0, None, 0.0
    last_path, best_path, log_path = out_dir / "last.pt", out_dir / "best.pt", out_dir / "metrics.jsonl"
    if group.main:
        for stale in out_dir.glob("*.pt*.tmp"):  # a save cut short by kill -9: never a checkpoint
            stale.unlink()
    if resume:
        if not last_path.exists():
            raise CheckpointError(f"{last_path}: nothing to resume yet (no checkpoint was written); "
                                  "start the run without --resume")
        ckpt = load_checkpoint(last_path, kind)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        step, best, nonfinite, earlier_seconds = ckpt["step"], ckpt["best"], ckpt["nonfinite"], ckpt["elapsed"]
        ranks = ckpt.get("ranks", [{"rng": ckpt["rng"], "carry": ckpt["carry"]}])
        if len(ranks) == group.world:
            carry = map_state(ranks[group.rank]["carry"], lambda t: t.to(device))
            _set_rng_state(ranks[group.rank]["rng"])
        else:  # written by another number of processes: the carried state was theirs
            if group.main:
                tqdm.write(f"resuming with {group.world} processes a run written by {len(ranks)}: "
                           "the data order stays exact; dropout draws and carried state start afresh")
            torch.manual_seed(_rank_seed(cfg.seed + step, group.rank))
    else:
        torch.manual_seed(_rank_seed(cfg.seed, group.rank))
        if group.main:
            log_path.unlink(missing_ok=True)
    if group.main and resume and log_path.exists():  # rows logged after the checkpoint will be logged again
        rows = [line for line in log_path.read_text().splitlines() if json.loads(line)["step"] <= step]
        log_path.write_text("".join(row + "\n" for row in rows))
    log = log_path.open("a") if group.main else None
    started = time.monotonic()  # the --minutes budget counts this invocation only

    def elapsed() -> float:
        """Training seconds over all invocations of this run."""
        return earlier_seconds + time.monotonic() - started

    def write_row(row: dict) -> None:
        log.write(json.dumps(row) + "\n")
        log.flush()

    def rank_states() -> list[dict]:
        """Every rank's RNG and carried state, for the checkpoint (a collective: every rank calls
        it at the same step)."""
        return distributed.gather({"rng": _rng_state(), "carry": map_state(carry, torch.Tensor.cpu)}, group)

    def checkpoint(path: Path, ranks: list[dict]) -> None:
        save_atomic(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "step": step,
                "best": best,
                "nonfinite": nonfinite,
                "carry": ranks[0]["carry"],
                "elapsed": elapsed(),
                "rng": ranks[0]["rng"],
                **({"ranks": ranks} if len(ranks) > 1 else {}),
                "kind": kind,
                "config": config,
                **(extras or {}),
            },
            path,
        )

    def validate(ranks: list[dict]) -> dict:
        """Rank 0 only: the others go on to the next step and wait for it there."""
        nonlocal best
        if evaluate is None:
            return {}
        model.eval()
        devices = [device] if device.type == "cuda" else []
        with torch.no_grad(), torch.random.fork_rng(devices=devices):
            metrics = evaluate(model)
            if after_eval is not None:
                after_eval(model, step, out_dir)
        model.train()
        write_row({"step": step, "split": "valid", "elapsed": round(elapsed(), 2), **metrics})
        if metrics["loss"] < best:
            best = metrics["loss"]
            checkpoint(best_path, ranks)
        return metrics

    def validate_and_save() -> dict:
        ranks = rank_states()
        if not group.main:
            return {}
        metrics = validate(ranks)
        checkpoint(last_path, ranks)
        return metrics

    status, last_eval, train_loss, valid = "budget", step, math.nan, {}
    start_step = step
    bar = tqdm(total=cfg.steps or None, initial=step, unit="step", disable=not progress, dynamic_ncols=True)
    running_loss, running_n = 0.0, 0
    with _stop_on_signals() as sigint:
        while not (cfg.steps and step >= cfg.steps):
            # Under torchrun the ranks agree on the clock and on a stop request (a rank that left
            # alone would leave the others waiting in the gradient all-reduce), and on the
            # learning rate, which a time budget makes depend on the clock.
            clock = (time.monotonic() - started) / (cfg.minutes * 60) if cfg.minutes else 0.0
            clock, stop = distributed.agree_max([clock, float(sigint["stop"])], group, device)
            if clock >= 1:
                break
            if stop:
                status = "interrupted"
                break
            lr = learning_rate(cfg, step, max(step / cfg.steps if cfg.steps else 0.0, clock))
            for param_group in optimizer.param_groups:
                param_group["lr"] = lr
            batch = batch_fn(step)
            if group.world > 1:
                batch = shard_batch(batch, group)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                batch = map_state(batch, lambda t: t.to(device, non_blocking=True))
                loss, new_carry, metrics = loss_fn(net, batch, carry, step)
            optimizer.zero_grad(set_to_none=True)
            finite = bool(torch.isfinite(loss))
            # Under DDP every rank must join the all-reduce in backward, whatever its own loss;
            # a non-finite loss makes the averaged gradient non-finite, so all ranks skip together.
            if finite or group.world > 1:
                loss.backward()
                params = [p for p in model.parameters() if p.grad is not None]
                if cfg.clip_mode == "norm":
                    norm = torch.nn.utils.clip_grad_norm_(params, cfg.clip if cfg.clip > 0 else math.inf)
                else:
                    norm = torch.nn.utils.get_total_norm([p.grad for p in params])
                    if cfg.clip > 0:
                        torch.nn.utils.clip_grad_value_(params, cfg.clip)
                finite = bool(torch.isfinite(norm)) and (finite or group.world > 1)
            if finite:
                optimizer.step()
                carry = map_state(new_carry, torch.Tensor.detach)
                if torch.isfinite(loss):  # the rank's own loss: under DDP only the average gradient must be finite
                    running_loss += loss.item()
                    running_n += 1
            else:
                # Skip the update (the batch is still consumed, so a bad batch is not retried
                # forever) and drop the carried state, which may hold the non-finite values.
                nonfinite += 1
                carry = None
                if nonfinite >= cfg.max_nonfinite:
                    status = "diverged"
                    step += 1
                    break
            step += 1
            if cfg.minutes:  # a time budget: predict the total from the rate so far, for the ETA
                spent = time.monotonic() - started
                predicted = start_step + int((step - start_step) * cfg.minutes * 60 / max(spent, 1e-9))
                bar.total = min(predicted, cfg.steps) if cfg.steps else predicted
            bar.update(1)
            if step % min(cfg.log_every, cfg.eval_every) == 0 or step == cfg.steps:
                # Under torchrun each rank saw its own shard: the log shows their mean.
                rank_losses = distributed.gather(running_loss / max(running_n, 1), group)
                train_loss, running_loss, running_n = sum(rank_losses) / group.world, 0.0, 0
                if group.main:
                    row = {"step": step, "split": "train", "loss": train_loss, "lr": lr,
                           "elapsed": round(elapsed(), 2), "nonfinite": nonfinite}
                    write_row({**row, **{k: float(v) for k, v in metrics.items()}})
                    bar.set_postfix(loss=f"{train_loss:.4f}", lr=f"{lr:.2e}")
            if step % cfg.eval_every == 0:
                valid = validate_and_save()
                last_eval = step
                if valid:
                    bar.set_postfix(loss=f"{train_loss:.4f}", valid=f"{valid['loss']:.4f}")
    bar.close()
    ranks = rank_states()
    if group.main:
        if last_eval != step and status != "interrupted":
            valid = validate(ranks)
        checkpoint(last_path, ranks)
        log.close()
    distributed.leave(group)
    summary = {
        "status": status,
        "step": step,
        "train_loss": train_loss,
        "valid_loss": valid.get("loss", math.nan),
        "best_valid_loss": best,
        "nonfinite_steps": nonfinite,
        "minutes": round(elapsed() / 60, 2),
        "out_dir": str(out_dir),
    }
    if progress:
        tqdm.write(
            f"{status}: step {step}, train loss {train_loss:.4f}, valid loss "
            f"{summary['valid_loss']:.4f} (best {best:.4f}), {nonfinite} skipped steps, "
            f"{summary['minutes']} min; checkpoints in {out_dir}"
        )
    return summary
