"""The BPTT engine: budgets, exact resume, atomic checkpoints, the non-finite guard, Ctrl-C, TBPTT."""

import json
import math
import os
import pickle
import signal

import numpy as np
import pytest
import torch
from torch import nn

from sketchrnn.core import RecurrentStack
from sketchrnn.core.engine import (
    CheckpointError,
    TrainConfig,
    exponential_anneal,
    learning_rate,
    load_checkpoint,
    map_state,
    save_atomic,
    train,
)
from sketchrnn.data import StrokeBatch, stroke5_batch
from sketchrnn.experiments.long_range import adding_batch


class TinyRegressor(nn.Module):
    """An LSTM with recurrent dropout, so resume must restore the RNG to be exact."""

    def __init__(self):
        super().__init__()
        self.rnn = RecurrentStack("lstm", 2, 16, dropout=0.2)
        self.readout = nn.Linear(16, 1)

    def forward(self, x):
        _, (state,) = self.rnn(x)
        return self.readout(state[0]).squeeze(-1)


def batch_fn(step):
    return adding_batch(8, 12, torch.Generator().manual_seed(step))


def mse_loss(model, batch, carry, step):
    x, y = batch
    return nn.functional.mse_loss(model(x), y), None, {}


VALID = adding_batch(64, 12, torch.Generator().manual_seed(999))


def evaluate(model):
    return {"loss": float(nn.functional.mse_loss(model(VALID[0]), VALID[1]))}


def run(tmp_path, steps, resume=False, **overrides):
    torch.manual_seed(123)  # a different init each time would be overwritten by resume anyway
    model = TinyRegressor()
    cfg = TrainConfig(**{"steps": steps, "eval_every": 4, "log_every": 2, "lr": 1e-2, "lr_decay": 0.99, "min_lr": 1e-3,
                         **overrides})
    summary = train(model, cfg, tmp_path, kind="tiny", config={"hidden": 16}, batch_fn=batch_fn, loss_fn=mse_loss,
                    evaluate=evaluate, extras={"scale_factor": 2.5}, resume=resume, progress=False)
    return model, summary


def test_resume_is_exact(tmp_path):
    straight, _ = run(tmp_path / "a", 10)
    run(tmp_path / "b", 6)  # stops between two validations
    resumed, summary = run(tmp_path / "b", 10, resume=True)
    assert summary["step"] == 10
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), f"{name} differs after resume"


def test_checkpoint_holds_everything_to_rebuild_and_loads_on_cpu(tmp_path):
    model, summary = run(tmp_path, 8)
    ckpt = load_checkpoint(tmp_path / "last.pt", "tiny")
    assert ckpt["kind"] == "tiny" and ckpt["step"] == 8 and ckpt["config"] == {"hidden": 16}
    assert ckpt["scale_factor"] == 2.5
    with pytest.raises(CheckpointError, match="last.pt: a tiny checkpoint, not a sketch one"):
        load_checkpoint(tmp_path / "last.pt", "sketch")
    assert all(t.device.type == "cpu" for t in ckpt["model"].values())
    best = load_checkpoint(tmp_path / "best.pt")
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    valid = [r for r in rows if r["split"] == "valid"]
    assert [r["step"] for r in valid] == [4, 8]
    assert best["best"] == min(r["loss"] for r in valid) == summary["best_valid_loss"]
    assert [r["step"] for r in rows if r["split"] == "train"] == [2, 4, 6, 8]
    assert not list(tmp_path.glob("*.tmp")), "no temp files left behind"


def test_a_run_shorter_than_one_log_interval_reports_its_loss(tmp_path):
    # A time budget of a fraction of a second, a log row every 10,000 steps: no row is written,
    # yet the summary has the loss of the steps it took (it said nan).
    _, summary = run(tmp_path, 0, minutes=0.005, log_every=10_000, eval_every=10_000)
    assert 0 < summary["step"] < 10_000
    assert math.isfinite(summary["train_loss"]) and summary["train_loss"] > 0
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["split"] for r in rows] == ["valid"]  # the closing validation only


def test_save_atomic_keeps_previous_file_when_writing_fails(tmp_path):
    path = tmp_path / "last.pt"
    save_atomic({"kind": "tiny", "step": 1}, path)
    with pytest.raises((AttributeError, pickle.PicklingError)):
        save_atomic({"kind": "tiny", "step": 2, "unpicklable": lambda: None}, path)
    assert load_checkpoint(path) == {"kind": "tiny", "step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="last.pt: nothing to resume yet"):
        run(tmp_path, 4, resume=True)


def test_nonfinite_loss_skips_the_step_and_stops_after_many(tmp_path):
    def poisoned(model, batch, carry, step):
        loss, carry, metrics = mse_loss(model, batch, carry, step)
        return (loss * math.nan if step >= 3 else loss), carry, metrics

    model = TinyRegressor()
    cfg = TrainConfig(steps=100, eval_every=50, max_nonfinite=5)
    summary = train(model, cfg, tmp_path, kind="tiny", config={}, batch_fn=batch_fn, loss_fn=poisoned,
                    evaluate=evaluate, progress=False)
    assert summary["status"] == "diverged" and summary["nonfinite_steps"] == 5 and summary["step"] == 8
    assert all(torch.isfinite(p).all() for p in model.parameters()), "a NaN step must not update"
    assert load_checkpoint(tmp_path / "last.pt")["nonfinite"] == 5


def test_ctrl_c_stops_after_the_step_and_leaves_a_resumable_run(tmp_path):
    def interrupting(model, batch, carry, step):
        if step == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return mse_loss(model, batch, carry, step)

    model = TinyRegressor()
    summary = train(model, TrainConfig(steps=50, eval_every=10), tmp_path, kind="tiny", config={"hidden": 16},
                    batch_fn=batch_fn, loss_fn=interrupting, evaluate=evaluate, progress=False)
    assert summary["status"] == "interrupted" and summary["step"] == 3
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 3
    _, resumed = run(tmp_path, 6, resume=True)
    assert resumed["step"] == 6 and resumed["status"] == "budget"


def test_truncated_bptt_carries_detached_state_across_batches(tmp_path):
    """Chunks of one long stream, state carried: the engine must detach it after each step."""
    torch.manual_seed(0)
    stream = torch.randn(40, 4, 3)
    chunks = stream.split(10)  # chunks of k = 10 steps of one long stream
    rnn = RecurrentStack("lstm", 3, 8)
    seen = []

    def loss_fn(model, chunk, carry, step):
        seen.append(carry)
        out, carry = model(chunk, state=carry)
        return out.pow(2).mean(), carry, {}

    train(rnn, TrainConfig(steps=4, eval_every=100), tmp_path, kind="stack", config={},
          batch_fn=lambda s: chunks[s % 4], loss_fn=loss_fn, progress=False)
    assert seen[0] is None
    for carry in seen[1:]:
        assert carry[0][0].grad_fn is None and carry[0][0].abs().sum() > 0


def test_map_state_detaches_and_moves_nested_state_and_batches():
    h = torch.ones(2, 3, requires_grad=True) * 2
    state = [(h, h + 1), ((h,), (h,))]
    detached = map_state(state, torch.Tensor.detach)
    assert isinstance(detached, list) and isinstance(detached[0], tuple)
    assert detached[0][0].grad_fn is None and torch.equal(detached[0][1], h + 1)
    batch = stroke5_batch([np.ones((3, 3), dtype=np.float32)], [0])
    doubled = map_state(batch, lambda t: t * 2)
    assert isinstance(doubled, StrokeBatch) and torch.equal(doubled.lengths, batch.lengths * 2)


def test_schedules():
    cfg = TrainConfig(lr=1e-3, lr_decay=0.9999, min_lr=1e-5)
    assert learning_rate(cfg, 0) == pytest.approx(1e-3)
    assert learning_rate(cfg, 10_000) == pytest.approx((1e-3 - 1e-5) * 0.9999**10_000 + 1e-5)
    assert learning_rate(cfg, 10**7) == pytest.approx(1e-5)
    # Warmdown: untouched before the last 30% of the budget, then linear to the floor.
    flat = TrainConfig(lr=1e-3, min_lr=1e-4, warmdown=0.3)
    assert learning_rate(flat, 5, done=0.5) == pytest.approx(1e-3)
    assert learning_rate(flat, 5, done=0.85) == pytest.approx(1e-4 + 0.9e-3 * 0.5)
    assert learning_rate(flat, 5, done=1.0) == pytest.approx(1e-4)
    # Magenta's KL weight: from 0.01 toward 0.5 with R = 0.99995.
    assert exponential_anneal(0, 0.01, 0.5, 0.99995) == pytest.approx(0.01)
    assert exponential_anneal(20_000, 0.01, 0.5, 0.99995) == pytest.approx(0.5 - 0.49 * 0.99995**20_000)


def test_bad_config_is_refused(tmp_path):
    def attempt(cfg):
        train(TinyRegressor(), cfg, tmp_path, kind="tiny", config={}, batch_fn=batch_fn, loss_fn=mse_loss)

    with pytest.raises(ValueError, match="clip_mode"):
        attempt(TrainConfig(clip_mode="max"))
    with pytest.raises(ValueError, match="budget"):
        attempt(TrainConfig(steps=0))
    with pytest.raises(ValueError, match="precision"):
        attempt(TrainConfig(precision="fp16"))
    with pytest.raises(ValueError, match="warmdown"):
        attempt(TrainConfig(warmdown=1.5))


def test_bf16_training_learns_and_warmdown_ends_at_the_floor(tmp_path):
    _, fp32 = run(tmp_path / "fp32", 40)
    model, bf16 = run(tmp_path / "bf16", 40, precision="bf16", warmdown=0.5)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast keeps fp32 weights
    with torch.no_grad():
        first = evaluate(TinyRegressor())["loss"]
    assert bf16["best_valid_loss"] < 0.5 * first and bf16["best_valid_loss"] < 2 * fp32["best_valid_loss"]
    rows = [json.loads(line) for line in (tmp_path / "bf16" / "metrics.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in rows if r["split"] == "train"]
    assert lrs[0] == pytest.approx(1e-2 * 0.99 + 1e-3 * 0.01, rel=0.05)  # decay only, before warmdown
    decayed = (1e-2 - 1e-3) * 0.99**39 + 1e-3  # step 39, the last: 1/40 of the budget left
    assert lrs[-1] == pytest.approx(1e-3 + (decayed - 1e-3) * (1 / 40) / 0.5)  # nearly the 1e-3 floor
    assert lrs == sorted(lrs, reverse=True)
