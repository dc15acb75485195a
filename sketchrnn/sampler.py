"""Sampling from a Sketch-RNN decoder one point at a time: unconditional drawings, or k
alternative continuations of a partial drawing, stepped together as one batch.

Temperature tau scales the pi and pen logits by 1/tau and sigma by sqrt(tau), as sketch-rnn-js
does (Magenta's TF ``sample()`` scales sigma by tau). Points come out in the drawing's own units
(the model's scale factor undone), as stroke-3 [dx, dy, p].
"""

import copy
from dataclasses import dataclass

import numpy as np
import torch

from sketchrnn.data import S0, normalise, stroke5_batch
from sketchrnn.model import MixtureParams, SketchRNN


@dataclass
class Step:
    points: np.ndarray  # (k, 3) [dx, dy, p] per alternative, in the drawing's units
    ended: np.ndarray  # (k,) True where this step is the alternative's end of sketch
    active: np.ndarray  # (k,) False where the alternative had ended before: its row means nothing


def sample_points(p: MixtureParams, temperature: torch.Tensor, greedy: torch.Tensor, uniforms: torch.Tensor):
    """One point per row from a step's output distribution -> (dx, dy, pen index), in model units.

    Row b uses temperature[b] (B, 1), greedy[b] (B,) and its own four uniforms[b] (B, 4), so a
    row's draw depends only on its own random stream: a seeded request repeats exactly whichever
    other rows share its batch. Pen and component by inverse CDF; offsets by Box-Muller.
    """
    u = uniforms.to(p.mu_x.dtype).T.contiguous()  # (4, B): each row of draws contiguous
    pen_cdf = torch.softmax(p.pen_logits / temperature, -1).cumsum(-1)
    pi_cdf = torch.softmax(p.log_pi / temperature, -1).cumsum(-1)
    pen = torch.searchsorted(pen_cdf, u[0, :, None]).clamp_max(2)[:, 0]
    component = torch.searchsorted(pi_cdf, u[1, :, None]).clamp_max(pi_cdf.shape[-1] - 1)
    pen = torch.where(greedy, p.pen_logits.argmax(-1), pen)
    component = torch.where(greedy[:, None], p.log_pi.argmax(-1, keepdim=True), component)

    def pick(t):
        return t.gather(-1, component)[:, 0]

    mu_x, mu_y, rho = pick(p.mu_x), pick(p.mu_y), pick(p.rho)
    radius = torch.sqrt(-2 * torch.log1p(-u[2]))  # 1 - u in (0, 1]: log never sees 0
    n1, n2 = radius * torch.cos(2 * torch.pi * u[3]), radius * torch.sin(2 * torch.pi * u[3])
    spread = torch.where(greedy, 0.0, torch.sqrt(temperature[:, 0]))
    sx, sy = torch.exp(pick(p.log_sigma_x)) * spread, torch.exp(pick(p.log_sigma_y)) * spread
    dx = mu_x + sx * n1
    dy = mu_y + sy * (rho * n1 + torch.sqrt(1 - rho**2) * n2)
    return dx, dy, pen


def next_inputs(dx: torch.Tensor, dy: torch.Tensor, pen: torch.Tensor) -> torch.Tensor:
    """The sampled points as the decoder's next stroke-5 inputs (B, 5)."""
    return torch.cat([torch.stack([dx, dy], -1), torch.nn.functional.one_hot(pen, 3).to(dx.dtype)], -1)


def stroke3_to_inputs(stroke3: np.ndarray, scale: float) -> torch.Tensor:
    """stroke-3 in the drawing's units -> stroke-5 decoder inputs (N, 5), offsets normalised."""
    s3 = torch.as_tensor(np.asarray(stroke3, dtype=np.float32))
    pen = s3[:, 2]
    return torch.stack([s3[:, 0] / scale, s3[:, 1] / scale, 1 - pen, pen, torch.zeros_like(pen)], -1)


def feed_prefix(model: SketchRNN, state, pending: torch.Tensor, prefixes: list[torch.Tensor],
                z: torch.Tensor | None = None):
    """Run the decoder over row b's pending input ``pending[b]`` (B, 5) and then every row of
    ``prefixes[b]`` (N_b >= 1, 5) but the last, all rows in one padded pass, each row's state
    taken at its own end. Returns (state, new pending inputs (B, 5)): each prefix's last point is
    read by the next step."""
    sequences = [torch.cat([first[None], prefix[:-1]]) for first, prefix in zip(pending, prefixes)]
    lengths = torch.tensor([len(sequence) for sequence in sequences])
    _, state = model.decode(torch.nn.utils.rnn.pad_sequence(sequences), state, z=z, lengths=lengths)
    return state, torch.stack([prefix[-1] for prefix in prefixes])


class Sampler:
    """Holds the decoder state of k alternatives; ``prime`` feeds a partial drawing, ``step``
    samples the next point of every alternative still drawing."""

    def __init__(
        self,
        model: SketchRNN,
        scale_factor: float,
        k: int = 1,
        temperature: float = 0.25,  # sketch-rnn-js's demos draw at 0.25: tidy but varied
        greedy: bool = False,  # take the most likely component, mean offset and pen state
        seed: int | None = None,
        z: torch.Tensor | None = None,  # VAE latent (1, z) or (k, z); None for decoder-only
    ):
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.model = model.eval()
        self.scale, self.k = scale_factor, k
        self.temperature, self.greedy = temperature, greedy
        self.rng = np.random.default_rng(seed)
        self.z = None if z is None else z.expand(k, -1)
        self.state = model.initial_state(k, self.z)
        self.next_input = torch.tensor(S0).expand(k, 5)
        self.done = np.zeros(k, dtype=bool)
        self.count = 0  # points sampled so far

    @torch.no_grad()
    def prime(self, stroke3: np.ndarray) -> "Sampler":
        """Feed a partial drawing (stroke-3, the drawing's units) in one pass; the next ``step``
        continues it. Every alternative gets the same prefix."""
        inputs = stroke3_to_inputs(stroke3, self.scale)
        if len(inputs) > 0:
            self.state, self.next_input = feed_prefix(self.model, self.state, self.next_input, [inputs] * self.k,
                                                      self.z)
        return self

    def _decode(self, inputs: torch.Tensor):
        return self.model.decode(inputs, self.state, z=self.z)

    @torch.no_grad()
    def step(self) -> Step:
        out, self.state = self._decode(self.next_input[None])
        tau = torch.full((self.k, 1), self.temperature)
        greedy = torch.full((self.k,), self.greedy)
        dx, dy, pen = sample_points(self.model.params(out[0]), tau, greedy, torch.from_numpy(self.rng.random((self.k, 4))))
        self.next_input = next_inputs(dx, dy, pen)
        active = ~self.done
        ended = (pen == 2).numpy() & active
        self.done |= ended
        self.count += 1
        points = torch.stack([dx * self.scale, dy * self.scale, (pen == 1).float()], -1).numpy()
        return Step(points, ended, active)

    def run(self, max_points: int = 250) -> list[np.ndarray]:
        """Step until every alternative ends or ``max_points``; each alternative's stroke-3."""
        drawn = [[] for _ in range(self.k)]
        while not self.done.all() and self.count < max_points:
            s = self.step()
            for i in np.flatnonzero(s.active & ~s.ended):
                drawn[i].append(s.points[i])
        return [np.array(d, dtype=np.float32).reshape(-1, 3) for d in drawn]

    def clone(self) -> "Sampler":
        """An independent copy (state, pending input, RNG) sharing the model: restart alternatives
        from a primed state without priming again."""
        twin = copy.copy(self)
        twin.state = tuple(s.clone() for s in self.state)
        twin.done = self.done.copy()
        twin.rng = copy.deepcopy(self.rng)
        return twin


@torch.no_grad()
def encode(model: SketchRNN, scale_factor: float, drawings: list[np.ndarray]) -> torch.Tensor:
    """The mean latent mu (n, z) of each drawing under a VAE model."""
    if model.config.mode != "vae":
        raise ValueError("encoding needs a VAE model (trained with --mode vae)")
    batch = stroke5_batch([normalise(d, scale_factor) for d in drawings], np.zeros(len(drawings), dtype=np.int64))
    mu, _ = model.eval().encode(batch.targets, batch.lengths - 1)
    return mu


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation between latents, as Magenta's notebook: it keeps the norm a
    Gaussian latent typically has, where a straight line would pass near the origin."""
    omega = torch.arccos(torch.clamp(torch.dot(a / a.norm(), b / b.norm()), -1.0, 1.0))
    if omega.abs() < 1e-6:
        return (1 - t) * a + t * b
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)
