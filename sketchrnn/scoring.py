"""How well each model explains a drawing: NLL per point in drawing units, comparable across
models whatever their scale factors; the likeliest model is the likelihood's guess."""

import numpy as np
import torch

from sketchrnn.data import END, S0, stroke5, to_model_units
from sketchrnn.drawing_input import prepare_for
from sketchrnn.latent import encode
from sketchrnn.model import SketchRNN, step_nll


@torch.no_grad()
def score(model: SketchRNN, drawing: np.ndarray, scales, start: int = 0, ended: bool = False) -> np.ndarray:
    """NLL per point in drawing units (nats) of ``drawing``'s points from ``start`` on, given the
    points before it, read at each of ``scales`` (one batched pass, a row per scale); with
    ``ended`` the end of sketch after the last point counts too. Comparable across scales and
    models: a density over model units is the density over drawing units times scale^2.
    A VAE reads with z from the encoder of the points before ``start`` (the prior's mean if none)."""
    device = next(model.parameters()).device
    scales = np.asarray(scales, dtype=np.float64)
    rows = torch.from_numpy(np.stack([stroke5(to_model_units(drawing, s)) for s in scales], 1)).to(device)
    first = torch.tensor(S0, device=device).expand(1, len(scales), 5)
    end = torch.tensor(END, device=device).expand(1, len(scales), 5)
    inputs = torch.cat([first, rows if ended else rows[:-1]])
    targets = torch.cat([rows, end]) if ended else rows
    z = None
    if model.config.mode == "vae":  # the points before start, encoded at each row's own scale
        z = (torch.cat([encode(model, s, [drawing[:start]]) for s in scales]) if start > 0
             else torch.zeros(len(scales), model.config.z_size, device=device))
    out, _ = model.eval().decode(inputs, z=z)
    offset, pen = step_nll(model.params(out), targets)
    offset = offset[start : len(drawing)] + 2 * torch.log(torch.from_numpy(scales).to(offset))
    total = offset.sum(0) + pen[start:].sum(0)
    return (total / (len(targets) - start)).cpu().numpy()


def guess_model(models: dict, polylines: list[np.ndarray]) -> tuple[str, dict[str, float]]:
    """Which model (of ``{name: LoadedModel}``) explains a person's drawing best: each scores the
    drawing, prepared for it, as NLL per point in drawing units (comparable across models whatever
    their scale factors). Returns the name of the likeliest and every score."""
    scores = {}
    for name, loaded in models.items():
        prefix, scale = prepare_for(loaded, polylines)
        scores[name] = float(score(loaded.model, prefix, [scale])[0])
    return min(scores, key=scores.get), scores


# How many points' worth of evidence a drawing is taken as when the likelihoods become
# probabilities. The whole drawing's (every point independent) gives 100% / 0% / 0% for drawings
# the likelihood names wrongly half the time (BENCHMARKS.md); ten keeps its order and says how sure.
LIKELIHOOD_POINTS = 10


def likelihood_guess(models: dict, polylines: list[np.ndarray]) -> list[tuple[str, float]]:
    """``guess_model`` as probabilities, best first: p proportional to exp(-NLL per point x
    LIKELIHOOD_POINTS) under a uniform prior over the models. A recognizer's probabilities are
    the better guess where there is one."""
    _, scores = guess_model(models, polylines)
    names = list(scores)
    log_likelihood = -np.array([scores[n] for n in names]) * LIKELIHOOD_POINTS
    p = np.exp(log_likelihood - log_likelihood.max())
    p /= p.sum()
    return sorted(zip(names, p.tolist()), key=lambda item: -item[1])
