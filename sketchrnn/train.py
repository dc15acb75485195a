"""Training and evaluating a Sketch-RNN model on stroke files, on the core BPTT engine."""

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from sketchrnn.core import distributed
from sketchrnn.core.engine import TrainConfig, exponential_anneal, map_state, option, train
from sketchrnn.core.run import check_run_folder
from sketchrnn.data import (
    Batcher,
    SketchSet,
    cap_length,
    evaluation_batches,
    load_sketches,
    scale_factor,
    shard_strokes,
)
from sketchrnn.model import SketchRNN, SketchRNNConfig, per_drawing_nll, training_loss
from sketchrnn.plot import Series, line_chart
from sketchrnn.render import render_grid
from sketchrnn.sampler import Settings, sample


def magenta_engine() -> TrainConfig:
    """Magenta's optimizer settings: Adam 1e-3 decaying 0.9999 a step to 1e-5, gradients clipped
    by value at 1 (the MDN's rare huge gradients stay bounded)."""
    return TrainConfig(steps=10_000, lr=1e-3, lr_decay=0.9999, min_lr=1e-5, clip=1.0, clip_mode="value")


@dataclass
class SketchTrainConfig:
    """Everything ``sketchrnn train`` sets: the model, the engine, and Magenta's data and KL
    settings (``get_default_hparams``), each with its reason."""

    model: SketchRNNConfig = field(default_factory=SketchRNNConfig)
    engine: TrainConfig = field(default_factory=magenta_engine)
    batch_size: int = option(100, "drawings per step (Magenta's; large enough for stable Adam steps)",
                             minimum=1, maximum=100_000)
    random_scale: float = option(0.15, "stretch x and y independently by up to this fraction", minimum=0, below=1)
    drop_prob: float = option(0.1, "point dropping: the model sees each shape at several resolutions",
                              minimum=0, maximum=1)
    kl_weight: float = option(0.5, "final KL weight (vae); 0.5 trades reconstruction for a smooth z", minimum=0)
    kl_weight_start: float = option(0.01, "KL weight at step 0: learn to reconstruct first", minimum=0)
    kl_decay_rate: float = option(0.99995, "R in w = w_max - (w_max - w_start) R^step", minimum=0, maximum=1)
    kl_tolerance: float = option(0.2, "free bits: KL below this per z dimension costs nothing", minimum=0)
    max_len: int = option(250, "longest drawing trained on, in points (Magenta's max_seq_len for sheep)", minimum=2)
    overlong: str = option("drop", "what to do with longer drawings: drop (Magenta) or truncate",
                           choices=("drop", "truncate"))
    bucket: bool = option(True, "batch drawings of similar lengths: a fraction of the padding of random batches")


def sketch_loss(model: SketchRNN, batch, step: int, cfg: SketchTrainConfig) -> tuple[torch.Tensor, dict]:
    """One training step's loss and its metrics: Magenta's reconstruction loss, plus for a VAE the
    KL cost, floored at the free bits and weighted by the annealed KL weight."""
    offset, pen, kl = model(batch.inputs, batch.targets, batch.lengths)
    reconstruction = training_loss(offset, pen, batch.targets)
    metrics = {"reconstruction": reconstruction.detach()}
    if kl is None:
        return reconstruction, metrics
    weight = exponential_anneal(step, cfg.kl_weight_start, cfg.kl_weight, cfg.kl_decay_rate)
    kl_cost = torch.clamp(kl.mean(), min=cfg.kl_tolerance)
    metrics.update(kl=kl.mean().detach(), kl_weight=weight)
    return reconstruction + weight * kl_cost, metrics


def evaluate_nll(model: SketchRNN, scale: float, sketches: SketchSet, batch_size: int = 100) -> dict:
    """The mean NLL per point over drawings (definition in ``model.per_drawing_nll``); for a VAE
    the reconstruction uses z = mu and the KL is reported beside it."""
    device = next(model.parameters()).device
    nlls, kls, points = [], [], 0
    model.eval()
    with torch.no_grad():
        for batch in evaluation_batches(sketches, scale, batch_size):
            batch = map_state(batch, lambda t: t.to(device))
            offset, pen, kl = model(batch.inputs, batch.targets, batch.lengths, sample_z=False)
            nlls.append(per_drawing_nll(offset, pen, batch.targets, batch.lengths).cpu())
            points += int(batch.lengths.sum()) - len(batch.lengths)
            if kl is not None:
                kls.append(kl.cpu())
    result = {"nll": float(torch.cat(nlls).mean()), "drawings": len(sketches), "points": points}
    if kls:
        result["kl"] = float(torch.cat(kls).mean())
    return result


def learning_curve(metrics_path: Path, out: Path) -> Path | None:
    """The run's losses as SVG; None, and no file, where it has none yet (stopped before the first
    log row: Ctrl-C or SIGTERM early in training)."""
    rows = [json.loads(line) for line in metrics_path.read_text().splitlines()] if metrics_path.exists() else []
    train_rows = [r for r in rows if r["split"] == "train" and math.isfinite(r["loss"])]
    valid_rows = [r for r in rows if r["split"] == "valid"]
    if not train_rows and not valid_rows:
        return None
    series = [Series("train loss", [r["step"] for r in train_rows], [r["loss"] for r in train_rows]),
              Series("valid NLL per point", [r["step"] for r in valid_rows], [r["nll"] for r in valid_rows])]
    return line_chart(series, out, "Learning curve", "step", "nats")


def train_sketch_model(data_paths: list[str], out_dir: str | Path, cfg: SketchTrainConfig, resume: bool = False,
                       progress: bool = True, overwrite: bool = False) -> dict:
    """Train on stroke files into the run folder ``out_dir``; one that holds a run is continued
    (``resume``: the same data and model, or a refusal) or started over (``overwrite``)."""
    out_dir, seed = Path(out_dir), cfg.engine.seed
    check_run_folder(out_dir, resume, overwrite)
    data = load_sketches(data_paths, seed=seed)
    train_set, dropped = cap_length(data.splits["train"], cfg.max_len, cfg.overlong)
    valid_set, _ = cap_length(data.splits["valid"], cfg.max_len, cfg.overlong)
    if len(valid_set) == 0:
        raise ValueError(f"{', '.join(map(str, data_paths))}: the valid split is empty; validation needs drawings")
    scale = scale_factor(train_set.drawings)
    main = distributed.current().main  # under torchrun, rank 0 alone reports and draws
    if progress and main:
        print(f"{len(train_set)} training drawings ({dropped} over {cfg.max_len} points {cfg.overlong}ped), "
              f"{len(valid_set)} validation, classes {data.classes}, scale factor {scale:.4f}")
    batcher = Batcher(train_set, scale, cfg.batch_size, cfg.bucket, cfg.random_scale, cfg.drop_prob, seed=seed)
    torch.manual_seed(seed)
    model = SketchRNN(cfg.model)

    def loss_fn(model, batch, carry, step):
        loss, metrics = sketch_loss(model, batch, step, cfg)
        return loss, None, metrics

    def evaluate(model):
        result = evaluate_nll(model, scale, valid_set, cfg.batch_size)
        return {"loss": result["nll"] + result.get("kl", 0.0), **result}

    def after_eval(model, step, out_dir):
        render_grid(sample(model, scale, 16, Settings(temperature=0.4, seed=step)), out_dir / f"samples-{step:06d}.svg")

    summary = train(
        model, cfg.engine, out_dir, kind="sketch", config=asdict(cfg.model), batch_fn=batcher.batch,
        loss_fn=loss_fn, evaluate=evaluate, after_eval=after_eval,
        extras={"scale_factor": scale, "classes": data.classes, "max_len": cfg.max_len, "train_config": asdict(cfg),
                "data": [Path(p).name for p in data_paths]},
        resume=resume, progress=progress, shard_batch=shard_strokes,
    )
    if main:
        learning_curve(out_dir / "metrics.jsonl", out_dir / "learning_curve.svg")
    return summary
