"""Long-range dependency experiments that show why gated cells matter: Hochreiter & Schmidhuber's
adding problem, and how the gradient of a loss reaches back through time in each cell.
"""

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from sketchrnn.core import CELLS, RecurrentStack
from sketchrnn.core.engine import TrainConfig, option, train
from sketchrnn.core.run import check_run_folder


def adding_batch(batch: int, length: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """The adding problem (Hochreiter & Schmidhuber 1997, in the form of Le et al. 2015).

    Each step carries [value ~ U(0, 1), marker]; exactly two markers are 1, one in each half of
    the sequence; the target is the sum of the two marked values. To answer, a model must keep
    the first value for up to ``length`` steps. Returns x (T, B, 2) and y (B,).
    """
    values = torch.rand(length, batch, generator=generator)
    half = length // 2
    first = torch.randint(0, half, (batch,), generator=generator)
    second = torch.randint(half, length, (batch,), generator=generator)
    markers = torch.zeros(length, batch)
    markers[first, torch.arange(batch)] = 1.0
    markers[second, torch.arange(batch)] = 1.0
    return torch.stack([values, markers], -1), (values * markers).sum(0)


class SequenceRegressor(nn.Module):
    """One recurrent layer read out linearly from its last hidden state."""

    def __init__(self, cell: str, hidden: int):
        super().__init__()
        self.rnn = RecurrentStack(cell, 2, hidden)
        self.readout = nn.Linear(hidden, 1)

    def forward(self, x: Tensor) -> Tensor:
        _, (state,) = self.rnn(x)
        return self.readout(state[0]).squeeze(-1)


@dataclass
class AddingConfig:
    cell: str = option("lstm", "recurrent cell", choices=tuple(CELLS))
    length: int = option(100, "sequence length T: how far back the first marked value lies (up to T steps)", minimum=2)
    hidden: int = option(128, "units in the recurrent layer", minimum=1, maximum=8192)
    batch: int = option(50, "sequences per training step", minimum=1, maximum=100_000)
    test_size: int = option(4000, "held-out sequences the reported MSE is measured on", minimum=1, maximum=1_000_000)
    # Adam 1e-3 trains every cell here without blowing up the Elman RNN; clipping the gradient
    # norm at 1 because long unrolls occasionally spike.
    engine: TrainConfig = field(default_factory=lambda: TrainConfig(steps=3000, lr=1e-3, clip=1.0, eval_every=250))


def run_adding_task(
    cfg: AddingConfig, out_dir: str | Path, resume: bool = False, progress: bool = True, overwrite: bool = False
) -> tuple[SequenceRegressor, dict]:
    """Train a cell on the adding problem with the core engine; report held-out MSE. A folder
    that holds a run is continued (``resume``) or started over (``overwrite``)."""
    check_run_folder(out_dir, resume, overwrite)
    seed = cfg.engine.seed
    torch.manual_seed(seed)
    model = SequenceRegressor(cfg.cell, cfg.hidden)
    test_x, test_y = adding_batch(cfg.test_size, cfg.length, torch.Generator().manual_seed(seed + 1_000_003))

    def batch_fn(step: int):
        return adding_batch(cfg.batch, cfg.length, torch.Generator().manual_seed(seed * 1_000_000 + step))

    def loss_fn(model, batch, carry, step):
        x, y = batch
        return nn.functional.mse_loss(model(x), y), None, {}

    def evaluate(model):
        device = next(model.parameters()).device
        return {"loss": float(nn.functional.mse_loss(model(test_x.to(device)), test_y.to(device)))}

    summary = train(model, cfg.engine, out_dir, kind="adding", config=asdict(cfg), batch_fn=batch_fn,
                    loss_fn=loss_fn, evaluate=evaluate, resume=resume, progress=progress)
    model.cpu()
    summary["test_mse"] = summary["valid_loss"]
    # Measured on the same test set, so sampling noise hits both numbers alike.
    summary["baseline_mse"] = float(nn.functional.mse_loss(torch.ones_like(test_y), test_y))
    summary["solved"] = summary["test_mse"] < 0.01
    return model, summary


def gradient_by_lag(model: SequenceRegressor, x: Tensor, y: Tensor) -> Tensor:
    """Mean over the batch of |dLoss/dh_t| for the loss at the last step, indexed by lag
    T-1-t. Unrolls the cell by hand so every h_t is a node the gradient passes through."""
    cell = model.rnn.layers[0].cell
    state = cell.initial_state(x.shape[1])
    hidden = []
    for xp_t in cell.project_input(x).unbind(0):
        h, state = cell.step(xp_t, state)
        hidden.append(h)
    loss = nn.functional.mse_loss(model.readout(state[0]).squeeze(-1), y)
    grads = torch.autograd.grad(loss, hidden)
    norms = torch.stack([g.norm(dim=-1).mean() for g in grads])
    return norms.flip(0)


@dataclass
class FlowResult:
    cell: str
    at_init: list[float]  # |dL/dh| at lag 0..T-1, untrained
    trained: list[float]  # the same after ``train_steps`` of the adding task
    train_steps: int
    trained_mse: float


def gradient_flow(
    cells: list[str], length: int, hidden: int, train_steps: int, out_dir: Path, seed: int = 0, progress: bool = True
) -> list[FlowResult]:
    """For each cell: gradient norm against lag, at init and after a little adding-task training."""
    x, y = adding_batch(100, length, torch.Generator().manual_seed(seed + 7))
    results = []
    for cell in cells:
        cfg = AddingConfig(cell=cell, length=length, hidden=hidden,
                           engine=TrainConfig(steps=train_steps, eval_every=max(train_steps, 1), seed=seed))
        torch.manual_seed(seed)
        at_init = gradient_by_lag(SequenceRegressor(cell, hidden), x, y)
        model, summary = run_adding_task(cfg, out_dir / cell, progress=progress, overwrite=True)  # scratch runs
        trained = gradient_by_lag(model, x, y)
        results.append(FlowResult(cell, at_init.tolist(), trained.tolist(), train_steps, summary["test_mse"]))
    return results


def decay_per_step(norms: list[float], lag: int) -> float:
    """Geometric-mean factor by which the gradient shrinks per step of lag over [0, lag]."""
    if norms[0] <= 0 or norms[lag] <= 0:
        return 0.0
    return math.exp(math.log(norms[lag] / norms[0]) / lag)
