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
shard of every batch, rank 0 alone validates, logs and writes checkpoints. The run folder, its
clock and its files are ``core/run.py``; checkpoint files ``core/checkpoint.py``.
"""

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from sketchrnn.core import distributed
from sketchrnn.core.checkpoint import CheckpointError, load_checkpoint, save_atomic
from sketchrnn.core.layers import compile_steps
from sketchrnn.core.run import Run, RunningLoss, map_state, stop_on_signals

__all__ = ["CheckpointError", "TrainConfig", "exponential_anneal", "learning_rate", "load_checkpoint", "map_state",
           "option", "resolve_device", "save_atomic", "train"]


def option(default, help: str, **argparse_extra):
    """A config field that is also a command-line flag: the default lives here, once, beside the
    help the flag shows (``choices=...`` and other argparse keywords pass through)."""
    return dataclasses.field(default=default, metadata={"help": help, **argparse_extra})


@dataclass
class TrainConfig:
    """What the engine needs to run any model; each model's config composes one, with its own
    defaults (Magenta's for Sketch-RNN, the 5-minute recipe for text)."""

    steps: int = option(10_000, "stop after this many optimizer steps in all; 0: no step limit",
                       minimum=0)
    minutes: float = option(0.0, "stop after this many minutes of this invocation; 0: no time limit",
                           minimum=0)
    lr: float = option(1e-3, "Adam learning rate at step 0", above=0)
    lr_decay: float = option(1.0, "per-step decay of (lr - min_lr) toward --min-lr; 1.0 keeps lr constant",
                             above=0, maximum=1)
    min_lr: float = option(0.0, "the floor that the decayed learning rate approaches", minimum=0)
    # With --minutes the fraction is of this invocation's clock, so a short run still ends
    # annealed (0.3: 1.510 -> 1.496 nats/char in a 5-minute text run).
    warmdown: float = option(0.0, "over this last fraction of the budget lr falls linearly to --min-lr; 0: off",
                             minimum=0, maximum=1)
    # bf16 is about 2x on CPUs with AMX; weights, Adam and validation stay fp32.
    precision: str = option("fp32", "fp32: exact; bf16: bfloat16 autocast; auto: bf16 where the hardware "
                            "has fast bf16 (AMX, CUDA)", choices=("fp32", "bf16", "auto"))
    clip: float = option(1.0, "gradient clipping threshold; 0 turns clipping off", minimum=0)
    clip_mode: str = option("norm", "norm: clip the global L2 norm; value: each element (Magenta's choice)",
                            choices=("norm", "value"))
    eval_every: int = option(500, "validate and write checkpoints every this many steps", minimum=1)
    log_every: int = option(50, "one metrics-log row every this many steps (at most --eval-every)", minimum=1)
    max_nonfinite: int = option(100, "give up after this many skipped steps with non-finite loss or gradients",
                               minimum=1)
    seed: int = option(0, "seeds initialisation, dropout and the data order", minimum=0, maximum=2**32 - 1)
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


def resolve_device(name: str) -> torch.device:
    """"auto" -> cuda where a GPU is visible, else cpu; anything else as torch names it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ValueError(f"device {name!r}: not one torch knows; use cpu, cuda, cuda:N or auto") from None


def check_config(cfg: TrainConfig) -> None:
    if cfg.clip_mode not in ("norm", "value"):
        raise ValueError(f"clip_mode must be 'norm' or 'value', got {cfg.clip_mode!r}")
    if cfg.steps <= 0 and cfg.minutes <= 0:
        raise ValueError("give a budget: steps > 0 or minutes > 0")
    if cfg.precision not in ("fp32", "bf16", "auto"):
        raise ValueError(f"precision must be 'fp32', 'bf16' or 'auto', got {cfg.precision!r}")
    if not 0 <= cfg.warmdown <= 1:
        raise ValueError(f"warmdown is a fraction of the budget in [0, 1], got {cfg.warmdown}")


def update(loss: torch.Tensor, model: torch.nn.Module, optimizer: torch.optim.Optimizer, cfg: TrainConfig,
           group: distributed.Group) -> bool:
    """Backward, clip, step; False (and no step) where the loss or the gradient is not finite."""
    optimizer.zero_grad(set_to_none=True)
    finite = bool(torch.isfinite(loss))
    # Under DDP every rank must join the all-reduce in backward, whatever its own loss; a
    # non-finite loss makes the averaged gradient non-finite, so all ranks skip together.
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
    return finite


def progress_bar(cfg: TrainConfig, run: Run, first_step: int, show: bool) -> tqdm:
    bar = tqdm(total=cfg.steps or None, initial=first_step, unit="step", disable=not show, dynamic_ncols=True)

    def advance(step: int) -> None:
        if cfg.minutes:  # a time budget: predict the total from the rate so far, for the ETA
            spent = time.monotonic() - run.started
            predicted = first_step + int((step - first_step) * cfg.minutes * 60 / max(spent, 1e-9))
            bar.total = min(predicted, cfg.steps) if cfg.steps else predicted
        bar.update(1)

    bar.advance = advance
    return bar


def set_up(model: torch.nn.Module, cfg: TrainConfig, shard_batch) -> tuple:
    """Join the torchrun group (if any), put the model on its device; (group, device, the model
    to step (DDP-wrapped under torchrun), its optimizer)."""
    check_config(cfg)
    group = distributed.current()
    if group.world > 1 and shard_batch is None:
        raise ValueError(f"this model trains in one process only; run it without torchrun (WORLD_SIZE={group.world})")
    device = distributed.join(group, resolve_device(cfg.device))
    model.to(device).train()
    if cfg.compile:
        compile_steps(model)
    # DDP averages the gradients over the ranks inside backward; evaluation and checkpoints use the plain model.
    net = DistributedDataParallel(model) if group.world > 1 else model
    return group, device, net, torch.optim.Adam(model.parameters(), lr=cfg.lr)


def train(model: torch.nn.Module, cfg: TrainConfig, out_dir: str | Path, *, kind: str, config: dict,
          batch_fn: Callable[[int], Any], loss_fn: Callable[..., tuple[torch.Tensor, Any, dict]],
          evaluate: Callable[[torch.nn.Module], dict] | None = None,
          after_eval: Callable[[torch.nn.Module, int, Path], None] | None = None, extras: dict | None = None,
          resume: bool = False, progress: bool = True,
          shard_batch: Callable[[Any, distributed.Group], Any] | None = None) -> dict:
    """Train ``model`` in place; return a summary dict. ``evaluate(model)`` returns metrics with a
    "loss" (lower is better; picks ``best.pt``); ``after_eval(model, step, out_dir)`` may render
    samples (both see ``Run.validate``). Checkpoints hold ``kind`` ("sketch", "text", ...), the
    model's ``config`` and ``extras`` (training config, scale factor, ...): one file rebuilds the
    model. ``shard_batch(batch, group)`` cuts this rank's part of a batch (torchrun only)."""
    group, device, net, optimizer = set_up(model, cfg, shard_batch)
    bf16 = cfg.precision == "bf16" or cfg.precision == "auto" and bf16_is_fast(device)
    run = Run(out_dir, model, optimizer, group, device, {"kind": kind, "config": config, **(extras or {})})
    p = run.resume(cfg.seed) if resume else run.start(cfg.seed)
    status, last_eval, train_loss, valid, losses = "budget", p.step, math.nan, {}, RunningLoss(group, p.step)
    bar = progress_bar(cfg, run, p.step, progress and group.main)
    with stop_on_signals() as signals:
        while not (cfg.steps and p.step >= cfg.steps):
            # Under torchrun the ranks agree on the clock and on a stop request (a rank that left
            # alone would leave the others waiting in the all-reduce), and so on the learning rate.
            clock, stop = distributed.agree_max([run.clock(cfg.minutes), float(signals["stop"])], group, device)
            if clock >= 1 or stop:
                status = "interrupted" if stop and clock < 1 else status
                break
            lr = learning_rate(cfg, p.step, max(p.step / cfg.steps if cfg.steps else 0.0, clock))
            for param_group in optimizer.param_groups:
                param_group["lr"] = lr
            batch = batch_fn(p.step) if group.world == 1 else shard_batch(batch_fn(p.step), group)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                batch = map_state(batch, lambda t: t.to(device, non_blocking=True))
                loss, new_carry, metrics = loss_fn(net, batch, p.carry, p.step)
            p.step += 1
            if update(loss, model, optimizer, cfg, group):
                p.carry = map_state(new_carry, torch.Tensor.detach)
                losses.add(loss)
            else:  # skip the update (the batch is still consumed, so a bad batch is not retried
                # forever) and drop the carried state, which may hold the non-finite values
                p.nonfinite, p.carry = p.nonfinite + 1, None
                if p.nonfinite >= cfg.max_nonfinite:
                    status = "diverged"
                    break
            bar.advance(p.step)
            if p.step % min(cfg.log_every, cfg.eval_every) == 0 or p.step == cfg.steps:
                train_loss = losses.take(p.step)
                if group.main:
                    run.write_row({"step": p.step, "split": "train", "loss": train_loss, "lr": lr,
                                   "nonfinite": p.nonfinite, **{k: float(v) for k, v in metrics.items()}})
                    bar.set_postfix(loss=f"{train_loss:.4f}", lr=f"{lr:.2e}")
            if p.step % cfg.eval_every == 0:
                valid, last_eval = run.validate_and_save(evaluate, after_eval), p.step
                if valid:
                    bar.set_postfix(loss=f"{train_loss:.4f}", valid=f"{valid['loss']:.4f}")
    bar.close()
    return finish(run, status, losses, train_loss, valid, last_eval, evaluate, after_eval, progress)


def finish(run: Run, status: str, losses: RunningLoss, train_loss: float, valid: dict, last_eval: int,
           evaluate, after_eval, progress: bool) -> dict:
    """The last validation and checkpoint, and the run's summary (printed, and returned)."""
    p, group = run.progress, run.group
    if losses.taken_at != p.step:  # steps since the last log row (a run shorter than one has no row at all)
        unlogged = losses.take(p.step)
        train_loss = unlogged if math.isfinite(unlogged) else train_loss
    ranks = run.rank_states()
    if group.main:
        if last_eval != p.step and status != "interrupted":
            valid = run.validate(evaluate, after_eval, ranks)
        run.save(run.last, ranks)
        run.close()
    distributed.leave(group)
    summary = {"status": status, "step": p.step, "train_loss": train_loss, "valid_loss": valid.get("loss", math.nan),
               "best_valid_loss": p.best, "nonfinite_steps": p.nonfinite, "minutes": round(run.elapsed() / 60, 2),
               "out_dir": str(run.out_dir)}
    if progress and group.main:
        tqdm.write(f"{status}: step {p.step}, train loss {train_loss:.4f}, valid loss {summary['valid_loss']:.4f} "
                   f"(best {p.best:.4f}), {p.nonfinite} skipped steps, {summary['minutes']} min; "
                   f"checkpoints in {run.out_dir}")
    return summary
