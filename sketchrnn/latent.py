"""A VAE's latent space: the encoder's mean for drawings, and paths between two latents."""

import numpy as np
import torch

from sketchrnn.data import stroke5_batch, to_model_units
from sketchrnn.model import SketchRNN


@torch.no_grad()
def encode(model: SketchRNN, scale_factor: float, drawings: list[np.ndarray]) -> torch.Tensor:
    """The mean latent mu (n, z) of each drawing under a VAE model."""
    if model.config.mode != "vae":
        raise ValueError("encoding needs a VAE model (trained with --mode vae)")
    device = next(model.parameters()).device
    batch = stroke5_batch([to_model_units(d, scale_factor) for d in drawings], np.zeros(len(drawings), dtype=np.int64))
    mu, _ = model.eval().encode(batch.targets.to(device), batch.lengths - 1)
    return mu


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation between latents, as Magenta's notebook: it keeps the norm a
    Gaussian latent typically has, where a straight line would pass near the origin."""
    omega = torch.arccos(torch.clamp(torch.dot(a / a.norm(), b / b.norm()), -1.0, 1.0))
    if omega.abs() < 1e-6:
        return (1 - t) * a + t * b
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)
