"""The Sketch-RNN model (Ha & Eck 2017): a recurrent decoder with a mixture-density output over
pen offsets and a softmax over pen states, optionally conditioned on a VAE latent z; its loss.

Output layout per step (as Magenta's sketch-rnn-js models, so their weights import as they are):

    [ pen logits (3) | pi logits (M) | mu_x (M) | mu_y (M) | log sigma_x (M) | log sigma_y (M) | rho (M, before tanh) ]
"""

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sketchrnn.core import RecurrentLayer, RecurrentStack, make_cell
from sketchrnn.core.engine import option

LOG_2PI = math.log(2 * math.pi)


@dataclass
class SketchRNNConfig:
    """Magenta sketch_rnn's model hyperparameters (``get_default_hparams``)."""

    mode: str = option("decoder", "decoder: unconditional, zero initial state; vae: conditioned on a latent z "
                       "of the drawing", choices=("decoder", "vae"))
    cell: str = option("lstm", "decoder cell (Magenta's default: lstm)", choices=("lstm", "layer_norm", "hyper", "gru"))
    hidden: int = option(512, "decoder units (Magenta's dec_rnn_size)", minimum=1, maximum=8192)
    mixtures: int = option(20, "bivariate normals in the offset mixture (Magenta's num_mixture)",
                           minimum=1, maximum=1000)
    dropout: float = option(0.1, "recurrent dropout on the candidate; Magenta keeps 0.9 of it", minimum=0, below=1)
    encoder_hidden: int = option(256, "units per direction of the bidirectional LSTM encoder (vae only)",
                                 minimum=1, maximum=8192)
    z_size: int = option(128, "latent size (vae only)", minimum=1, maximum=8192)

    def __post_init__(self):
        if self.mode not in ("decoder", "vae"):
            raise ValueError(f"mode must be 'decoder' or 'vae', got {self.mode!r}")
        if self.dropout and self.cell == "gru":
            raise ValueError(f"--cell gru has no recurrent dropout (the LSTM family's); pass --dropout 0 "
                             f"(it is {self.dropout})")


@dataclass
class MixtureParams:
    """One step's (or many steps') output distribution; every field (..., M) except pen (..., 3)."""

    pen_logits: Tensor
    log_pi: Tensor  # log mixture weights, normalised
    mu_x: Tensor
    mu_y: Tensor
    log_sigma_x: Tensor
    log_sigma_y: Tensor
    rho: Tensor  # correlation in (-1, 1)


def split_output(out: Tensor, mixtures: int) -> MixtureParams:
    pen, pi, mu_x, mu_y, ls_x, ls_y, rho = out.split([3] + [mixtures] * 6, -1)
    return MixtureParams(pen, F.log_softmax(pi, -1), mu_x, mu_y, ls_x, ls_y, torch.tanh(rho))


def offset_log_prob(p: MixtureParams, dx: Tensor, dy: Tensor) -> Tensor:
    """log of the mixture density at (dx, dy), computed in log space throughout (Magenta's
    ``log(p + 1e-6)`` turns NaN in long runs once a density underflows)."""
    zx = (dx.unsqueeze(-1) - p.mu_x) * torch.exp(-p.log_sigma_x)
    zy = (dy.unsqueeze(-1) - p.mu_y) * torch.exp(-p.log_sigma_y)
    one_minus_rho2 = (1 - p.rho**2).clamp_min(1e-6)
    quad = (zx**2 + zy**2 - 2 * p.rho * zx * zy) / one_minus_rho2
    log_normal = -LOG_2PI - p.log_sigma_x - p.log_sigma_y - 0.5 * torch.log(one_minus_rho2) - 0.5 * quad
    return torch.logsumexp(p.log_pi + log_normal, -1)


def step_nll(params: MixtureParams, targets: Tensor) -> tuple[Tensor, Tensor]:
    """Per-step offset NLL and pen NLL, each (T, B), for stroke-5 targets (T, B, 5)."""
    offset = -offset_log_prob(params, targets[..., 0], targets[..., 1])
    pen = -(F.log_softmax(params.pen_logits, -1) * targets[..., 2:]).sum(-1)
    return offset, pen


class SketchRNN(nn.Module):
    def __init__(self, config: SketchRNNConfig):
        super().__init__()
        self.config = config
        z = config.z_size if config.mode == "vae" else 0
        self.decoder = RecurrentLayer(make_cell(config.cell, 5 + z, config.hidden, config.dropout))
        self.output = nn.Linear(config.hidden, 3 + 6 * config.mixtures)
        if config.mode == "vae":
            self.encoder = RecurrentStack("lstm", 5, config.encoder_hidden, bidirectional=True)
            self.to_latent = nn.Linear(2 * config.encoder_hidden, 2 * config.z_size)  # mu, sigma-hat
            self.to_initial_state = nn.Linear(config.z_size, sum(self.decoder.cell.state_sizes))

    def encode(self, strokes: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Drawings (T, B, 5) without S0 -> (mu, sigma_hat) of q(z | drawing), each (B, z)."""
        ends = self.encoder.layers[0].last_outputs(strokes, lengths)  # unpacked: 11x faster to train
        return self.to_latent(ends).chunk(2, -1)

    def initial_state(self, batch: int, z: Tensor | None = None):
        if z is None:
            return self.decoder.cell.initial_state(batch)
        return tuple(torch.tanh(self.to_initial_state(z)).split(self.decoder.cell.state_sizes, -1))

    def decode(self, inputs: Tensor, state=None, z: Tensor | None = None, lengths: Tensor | None = None):
        """Teacher-forced decoder over stroke-5 inputs (T, B, 5) -> (raw output (T, B, 3+6M), state)."""
        if z is not None:
            inputs = torch.cat([inputs, z.expand(inputs.shape[0], -1, -1)], -1)
        if state is None:
            state = self.initial_state(inputs.shape[1], z)
        hidden, state = self.decoder(inputs, lengths, state)
        return self.output(hidden), state

    def params(self, out: Tensor) -> MixtureParams:
        return split_output(out, self.config.mixtures)

    def forward(self, inputs: Tensor, targets: Tensor, lengths: Tensor, sample_z: bool = True):
        """Returns (per-step offset NLL (T, B), pen NLL (T, B), KL per drawing (B,) or None)."""
        z = kl = None
        if self.config.mode == "vae":
            mu, sigma_hat = self.encode(targets, lengths - 1)  # the N points, as Magenta's encoder
            z = mu + torch.exp(sigma_hat / 2) * torch.randn_like(mu) if sample_z else mu
            kl = -0.5 * (1 + sigma_hat - mu**2 - torch.exp(sigma_hat)).mean(-1)
        out, _ = self.decode(inputs, z=z)
        offset, pen = step_nll(self.params(out), targets)
        return offset, pen, kl

    @classmethod
    def to_load(cls, config: SketchRNNConfig) -> "SketchRNN":
        """A model whose every weight is about to be overwritten (a checkpoint, an import): built on
        the meta device, so no initialisation is computed (the orthogonal init of a 512-unit cell
        is four QR decompositions, most of a second: serving 22 models spent 20 s on it)."""
        with torch.device("meta"):
            model = cls(config)
        return model.to_empty(device="cpu")

    def checkpoint_config(self) -> dict:
        return asdict(self.config)


def real_point_mask(targets: Tensor) -> Tensor:
    """(T, B) True at the drawing's own points, False at end-of-sketch and padding."""
    return targets[..., 4] == 0


def training_loss(offset: Tensor, pen: Tensor, targets: Tensor) -> Tensor:
    """Magenta's reconstruction loss: offset NLL over real points plus pen NLL over every step,
    padding included (so the model learns to stay ended), both averaged over all B x T steps."""
    steps = offset.numel()
    return torch.where(real_point_mask(targets), offset, 0.0).sum() / steps + pen.sum() / steps


def per_drawing_nll(offset: Tensor, pen: Tensor, targets: Tensor, lengths: Tensor) -> Tensor:
    """The evaluation metric, per drawing (B,): (offset NLL of the N points + pen NLL of the N + 1
    steps up to and including end-of-sketch) / (N + 1)."""
    steps = torch.arange(offset.shape[0], device=offset.device)[:, None]
    alive = steps < lengths[None, :]
    total = torch.where(real_point_mask(targets) & alive, offset, 0.0).sum(0) + torch.where(alive, pen, 0.0).sum(0)
    return total / lengths
