"""The one sampler: a Batch of rows stepping a Sketch-RNN decoder together, used alike by
``sketchrnn sample/complete`` and by the server. A person's strokes reach it through
``drawing_input``; ``scoring`` and ``recognizer`` say which model should draw.

Each request asks for n alternatives continuing one drawing; each alternative is a row with its
own request's random stream, temperature, scale, latent z and point budget. Requests join between
steps (their prefixes read in one call per prefix length) and leave when all their rows have ended.
A batch may hold several models of one shape (``LSTMStep.shape``): each row steps its own model's
weights, and everything else in a step (gates, sampling, the caller's bookkeeping) is shared:

    rows:  [ a.k0  a.k1  b.k0  c.k0  c.k1  c.k2 | pad  pad ]   state (rows, hidden), inputs (rows, 5)
             request a   req b  request c         padded to a multiple of ROW_MULTIPLE
                                                  (where torch steps a seeded request; see there)

Points come out in the drawing's own units, both as offsets (stroke-3) and as absolute positions.
"""

import functools
from dataclasses import dataclass, field

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import Tensor

from sketchrnn.data import S0, stroke5, to_model_units
from sketchrnn.latent import encode
from sketchrnn.model import SketchRNN

# While a seeded or greedy request is in the batch, every torch decoder call sees a row count that
# is a multiple of this. On MKL's sgemm a row's result then does not depend on which other rows
# share the call (with 1, 2 or 3 rows it does, by ~1e-6, and a sampled choice flips within a
# hundred points): a seeded request repeats exactly and greedy alternatives are identical. 8 was
# enough on an AVX2 machine, not on an AVX-512 one (16 float32 lanes; tests/test_model.py). An LSTM
# decoder on the CPU steps in numpy instead (LSTMStep), where such rows get a matrix-vector product
# each, which depends on nothing else: there no row is padded.
ROW_MULTIPLE = 16


@dataclass
class Settings:
    """How one request samples."""

    temperature: float = 0.25  # sigma times sqrt(tau); sketch-rnn-js's demos draw at 0.25
    pen_temperature: float | None = None  # divides the pen and mixture logits; None: 0.5 + 0.5 tau (sketch-rnn-js)
    greedy: bool = False  # the likeliest component, its mean offset, the likeliest pen state
    seed: int | None = None  # None: fresh randomness
    max_points: int = 250  # points per alternative (Magenta's max_seq_len)

    def __post_init__(self):
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.pen_temperature is not None and not self.pen_temperature > 0:
            raise ValueError(f"pen temperature must be > 0, got {self.pen_temperature}")
        if self.max_points < 1:
            raise ValueError(f"max_points must be >= 1, got {self.max_points}")

    @property
    def discrete_temperature(self) -> float:
        return 0.5 + 0.5 * self.temperature if self.pen_temperature is None else self.pen_temperature


@dataclass(eq=False)  # compared and hashed by identity: each request is its own
class Request:
    """n alternatives continuing one drawing (or drawing from nothing)."""

    prefix: np.ndarray  # stroke-3 in drawing units: what is drawn so far; (0, 3) for none
    scale: float  # drawing units per model unit
    n: int = 1
    settings: Settings = field(default_factory=Settings)
    z: Tensor | None = None  # VAE latent, (1, z) or (n, z); None: see Batch.latent
    origin: tuple[float, float] = (0.0, 0.0)  # the pen's position after the prefix, drawing units


@dataclass
class Points:
    """One step of every row: what a caller needs to report it, indexed by row."""

    rows: list[tuple[Request, int]]  # (request, alternative k)
    offset: np.ndarray  # (B, 2) the step's offset, drawing units
    position: np.ndarray  # (B, 2) the pen's position after it, drawing units
    lifted: np.ndarray  # (B,) the pen lifts after this point
    drawn: np.ndarray  # (B,) this step drew a point on the row
    ended: np.ndarray  # (B,) the row chose end-of-sketch at this step
    capped: np.ndarray  # (B,) the row drew its last allowed point
    count: np.ndarray  # (B,) points drawn by the row so far


def _inverse_cdf(logits: np.ndarray, temperature: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Per row, the category whose softmax(logits / temperature) CDF first exceeds u (B,)."""
    scaled = logits / temperature[:, None]
    cdf = np.cumsum(np.exp(scaled - scaled.max(-1, keepdims=True)), -1)
    # The count of CDF entries below u is the inverse CDF (searchsorted, left); u < 1 keeps it
    # below the last entry, which u * total never exceeds.
    return (cdf < (u * cdf[:, -1])[:, None]).sum(-1)


def sample_points(out: np.ndarray, mixtures: int, temperature: np.ndarray, discrete_temperature: np.ndarray,
                  greedy: np.ndarray, uniforms: np.ndarray, normals: np.ndarray, may_end: np.ndarray):
    """One point per row from a step's raw decoder output (B, 3 + 6M) -> (offsets (B, 2) in
    model units, pen index (B,)).

    Row b uses temperature[b], discrete_temperature[b], greedy[b], its own two uniforms[b] (pen,
    component, by inverse CDF) and two standard normals[b] (the offset), so a row's draw depends
    only on its own random stream. Where ``may_end[b]`` is False, end of sketch is not a choice:
    a row that has drawn nothing yet (someone asked for more, so "already finished" is no answer;
    Google's models give it 5-20% at the first step of a half drawing). In numpy, on the CPU:
    at a step's sizes (a few rows of 123 numbers) each operation costs a microsecond, where a
    torch operation costs five to ten; at batch 1 the whole draw is about twenty-five of them.
    """
    rows = np.arange(len(out))
    out = out.astype(np.float64)  # a copy: the pen logits below are changed in place
    pen_logits, logit_pi = out[:, :3], out[:, 3 : 3 + mixtures]
    pen_logits[:, 2] = np.where(may_end, pen_logits[:, 2], -np.inf)
    pen = _inverse_cdf(pen_logits, discrete_temperature, uniforms[:, 0])
    component = _inverse_cdf(logit_pi, discrete_temperature, uniforms[:, 1])
    spread = np.sqrt(temperature)
    if greedy.any():
        pen = np.where(greedy, pen_logits.argmax(-1), pen)
        component = np.where(greedy, logit_pi.argmax(-1), component)
        spread = np.where(greedy, 0.0, spread)
    # The chosen component's mu_x, mu_y, log sigma_x, log sigma_y, raw rho (model.split_output's
    # order: six blocks of M after the pen logits), in one gather.
    chosen = out[rows[:, None], 3 + mixtures * np.arange(1, 6) + component[:, None]]
    sigma = np.exp(chosen[:, 2:4])
    sigma *= spread[:, None]
    rho = np.tanh(chosen[:, 4])
    noise = normals.copy()
    noise[:, 1] = rho * normals[:, 0] + np.sqrt(1 - rho**2) * normals[:, 1]  # y's, correlated with x's
    return chosen[:, :2] + sigma * noise, pen


def pad_rows(t: Tensor | None, multiple: int, dim: int = 0) -> Tensor | None:
    """``t`` with zero rows appended along ``dim`` up to a multiple of ``multiple``."""
    if t is None or t.shape[dim] % multiple == 0:
        return t
    shape = list(t.shape)
    shape[dim] = -t.shape[dim] % multiple
    return torch.cat([t, t.new_zeros(shape)], dim)


def take_rows(t: Tensor | None, rows: np.ndarray) -> Tensor | None:
    """``t``'s rows at the indices ``rows``; on the CPU through numpy, which copies on the calling
    thread: torch spreads a copy of 64 x 512 floats or more over its threads, and waking its pool
    between the numpy step's BLAS calls makes the two pools fight for the cores (64 streams on 2
    cores, finished drawings replaced, drew 12-14,000 points/s with torch's copies, 37,000+ without)."""
    if t is None:
        return None
    return torch.from_numpy(t.numpy()[rows]) if t.is_cpu else t.index_select(0, torch.from_numpy(rows).to(t.device))


def join_rows(a: Tensor, b: Tensor) -> Tensor:
    """``a``'s rows then ``b``'s (see take_rows: numpy on the CPU)."""
    return torch.from_numpy(np.concatenate([a.numpy(), b.numpy()])) if a.is_cpu else torch.cat([a, b])


class LSTMStep:
    """One step of plain LSTM decoders of one shape and their output heads, in numpy, for sampling
    on the CPU: each model's weights laid out once for the product a step is, ``[1, x, z, h] @ W``
    with W ((1 + 5 + z + H) x 4H, the bias its first row) contiguous; a row reads its own model's.
    At batch 1 a step is a matrix-vector product over 4.5 MB of weights: numpy's OpenBLAS reads
    them in 54 us where torch's fused cell (MKL, W transposed) takes 90-150 us, and the gate
    arithmetic costs ~1 us an operation against torch's ~5. A whole ``Batch.step`` of 64 rows on
    two threads takes 1.4-1.6 ms in a server's steady state. The same function as the torch decoder's step, to
    float32 rounding (tests/test_model.py).

    A matrix product gives a row a result that depends, in the last bits, on its neighbours
    (OpenBLAS's blocking); a matrix-vector product does not, nor on the thread count (checked
    bitwise). So rows that must repeat exactly (``exact``: a seeded or greedy request's) always
    get their own, in the weights' product and in the head's."""

    def __init__(self, models: list[SketchRNN]):
        """``models`` of one ``shape`` (``Batch`` checks it: it is where models are combined)."""
        self.hidden = models[0].config.hidden
        self.weight = np.stack([self._gates(m) for m in models])  # (models, 1+5+z+H, 4H)
        self.head = np.stack([m.output.weight.detach().numpy().T for m in models])  # (models, H, 3 + 6M)
        self.head_bias = np.stack([m.output.bias.detach().numpy() for m in models])  # (models, 3 + 6M)

    @staticmethod
    def _gates(model: SketchRNN) -> np.ndarray:
        w_ih, w_hh, b_ih, b_hh = (w.detach().numpy() for w in model.decoder.cell.fused_weights())
        H = w_hh.shape[1]
        # Gate columns reordered (i, f, o, g) and the sigmoid gates' halved: one tanh over all
        # of them then gives tanh(x / 2) for i, f, o (sigmoid(x) = (1 + tanh(x / 2)) / 2, which
        # never overflows as exp(-x) can) and tanh(x) for g.
        order = np.r_[0 : 2 * H, 3 * H : 4 * H, 2 * H : 3 * H]
        halve = np.r_[np.full(3 * H, 0.5), np.ones(H)].astype(w_hh.dtype)
        bias = (b_ih + b_hh)[:, None]  # a column of W read by a constant 1: no addition of its own
        return np.concatenate([bias, w_ih, w_hh], 1)[order].T * halve  # (1+5+z+H, 4H)

    @staticmethod
    def shape(model: SketchRNN) -> tuple | None:
        """What models must share to step in one batch (None: this one steps through torch)."""
        if not LSTMStep.fits(model):
            return None
        config = model.config
        return config.hidden, config.mixtures, config.mode, config.z_size if config.mode == "vae" else 0

    @staticmethod
    def fits(model: SketchRNN) -> bool:
        """The decoder is an LSTM whose step is torch's fused cell (no dropout now), on the CPU."""
        layer = model.decoder
        return (layer.cell.fused_mode == "lstm" and layer.fused_allowed()
                and next(model.parameters()).device.type == "cpu")

    @staticmethod
    def lay_out(inputs: Tensor, state: tuple[Tensor, Tensor], z: Tensor | None) -> tuple[np.ndarray, np.ndarray]:
        """Rows as the step reads them, copied out of stroke-5 inputs (B, 5), state (h, c) each
        (B, H) and z (B, z) or None: xh (B, 1 + 5 + z + H), each row [1, x, z, h], and c (B, H)."""
        h, c = (s.numpy() for s in state)
        one = np.ones((len(h), 1), h.dtype)
        reads = [one, inputs.numpy(), h] if z is None else [one, inputs.numpy(), z.numpy(), h]
        return np.concatenate(reads, 1), c.copy()

    @staticmethod
    def views(xh: np.ndarray, c: np.ndarray, with_z: bool) -> tuple[Tensor, tuple[Tensor, Tensor], Tensor | None]:
        """The tensors a batch keeps, sharing memory with ``lay_out``'s arrays: inputs (B, 5),
        state (h, c) and z (or None), so what the step writes in place is what they hold."""
        hidden = c.shape[1]
        z = torch.from_numpy(xh[:, 6:-hidden]) if with_z else None
        return torch.from_numpy(xh[:, 1:6]), (torch.from_numpy(xh[:, -hidden:]), torch.from_numpy(c)), z

    def __call__(self, xh: np.ndarray, c: np.ndarray, exact: np.ndarray, model_of: np.ndarray) -> np.ndarray:
        """One step in place on rows laid out as ``lay_out``'s: reads xh, writes the new h into its
        h columns and the new c into c; ``exact`` (B,) bool marks the rows that must repeat
        exactly, ``model_of`` (B,) each row's model. Returns the raw output (B, 3 + 6M). The next
        input goes into xh's x columns, so nothing is gathered or copied between steps."""
        gates = _per_model(xh, self.weight, exact, model_of)
        np.tanh(gates, out=gates)
        H = self.hidden
        i, f, o, g = (gates[:, k * H : (k + 1) * H] for k in range(4))  # tanh(x / 2) for i, f, o
        # With sigmoid = (1 + tanh(x / 2)) / 2:  c' = ((1 + f) c + (1 + i) g) / 2,  h = (1 + o) tanh(c') / 2,
        # in place on H-wide slices (64 rows: 0.14 ms against 0.19 for the sigmoids taken first).
        f += 1.0
        c *= f
        i += 1.0
        i *= g
        c += i
        c *= 0.5
        h = xh[:, -H:]  # read by the product above, so overwritten only now
        np.tanh(c, out=h)
        o += 1.0
        h *= o
        h *= 0.5
        out = _per_model(h, self.head, exact, model_of)
        out += self.head_bias[model_of] if len(self.head_bias) > 1 else self.head_bias[0]
        return out


def _per_model(x: np.ndarray, weights: np.ndarray, alone: np.ndarray, model_of: np.ndarray) -> np.ndarray:
    """Each row of x times its own model's weights: one ``_product`` per model with rows here.
    Every model's weights are read once per step whatever its row count, so a step over many
    models costs their weights' reading (4.5 MB each for Magenta's decoders) more than its rows."""
    if len(weights) == 1:
        return _product(x, weights[0], alone)
    out = np.empty((len(x), weights.shape[2]), weights.dtype)
    for model in np.unique(model_of).tolist():
        rows = np.flatnonzero(model_of == model)
        out[rows] = _product(x[rows], weights[model], alone[rows])
    return out


def _product(x: np.ndarray, weight: np.ndarray, alone: np.ndarray) -> np.ndarray:
    """x @ weight, the ``alone`` rows each by a matrix-vector product of their own. The others
    share one matrix product only if there are 8 or more: a matrix product first packs all the
    weights (4 MB for the gates), and 2-7 rows in one cost ~10x one row."""
    if len(x) < 8 or len(x) - np.count_nonzero(alone) < 8:
        out = np.empty((len(x), weight.shape[1]), weight.dtype)
        for row, into in zip(x, out):
            np.matmul(row, weight, out=into)
        return out
    out = x @ weight  # the alone rows too, then overwritten: cheaper than gathering the others
    for row in np.flatnonzero(alone):
        np.matmul(x[row], weight, out=out[row])
    return out


def needs_exact(request: Request) -> bool:
    """A seeded request repeats exactly, a greedy one's alternatives are identical."""
    return request.settings.seed is not None or request.settings.greedy


def row_multiple(requests: list[Request]) -> int:
    """What the rows of a torch decoder call serving these requests are padded to (see ROW_MULTIPLE)."""
    return ROW_MULTIPLE if any(needs_exact(r) for r in requests) else 1


class Batch:
    """The decoder state of every row of every request being sampled; ``add`` requests, ``step``
    all rows, ``drop_finished`` (or ``remove``) the requests that are done. Given several models
    (all of one ``LSTMStep.shape``), ``add`` says which one draws the requests."""

    def __init__(self, models: SketchRNN | list[SketchRNN]):
        self.models = [m.eval() for m in (models if isinstance(models, list) else [models])]
        self.model = self.models[0]  # what the models share: the output's layout, the device
        if len(self.models) > 1 and (LSTMStep.shape(self.model) is None
                                     or len({LSTMStep.shape(m) for m in self.models}) != 1):
            raise ValueError("models step in one batch only as LSTM decoders of one shape on the CPU")
        self.device = next(self.model.parameters()).device
        self.requests: list[Request] = []  # in row order; each owns request.n consecutive rows
        self.rngs: list[np.random.Generator] = []  # one per request: a seeded one draws from its own
        self.unseeded_rng = np.random.default_rng()  # the other rows draw from this, in one call
        self.rows: list[tuple[Request, int]] = []
        # Decoder-side tensors keep their rows padded as padding() says (the padding rows step
        # too, and nothing reads them): no copy to pad them at every step.
        self.state = None  # tuple of (padded B, ...) tensors
        self.inputs = torch.zeros(0, 5, device=self.device)  # what each row's decoder reads next
        self.z = None  # (padded B, z) for a VAE
        # Where numpy steps: every row [1, x, z, h] as LSTMStep reads it; inputs, z and h are views
        # of it, and c is an array of its own, all written in place at each step.
        self.xh = None
        self.position = np.zeros((0, 2))
        self.count = np.zeros(0, dtype=np.int64)
        self.live = np.zeros(0, dtype=bool)
        self.scale = np.zeros(0)
        self.cap = np.zeros(0, dtype=np.int64)
        self.temperature = np.zeros(0)
        self.discrete_temperature = np.zeros(0)
        self.greedy = np.zeros(0, dtype=bool)
        self.exact = np.zeros(0, dtype=bool)  # the row's request needs_exact
        self.model_of = np.zeros(0, dtype=np.int64)  # the row's model, an index into models
        self.numpy_steps = LSTMStep.fits(self.model)  # the decoder steps in numpy (lstm_step)

    def __len__(self) -> int:
        return len(self.rows)

    @functools.cached_property
    def lstm_step(self) -> LSTMStep:
        """The numpy step (where ``numpy_steps``), its weights laid out (~7 ms a model) at the
        first step from the models as they are then."""
        return LSTMStep(self.models)

    def padding(self) -> int:
        """What the decoder-side rows are padded to: nothing where numpy steps them."""
        return 1 if self.numpy_steps else row_multiple(self.requests)

    def _set_rows(self, state: tuple[Tensor, ...], inputs: Tensor, z: Tensor | None) -> None:
        """The decoder-side tensors after rows joined or left, padded as ``padding`` says; where
        numpy steps, laid out once here for LSTMStep rather than at every step."""
        if self.numpy_steps:
            self.xh, c = LSTMStep.lay_out(inputs, state, z)
            self.inputs, self.state, self.z = LSTMStep.views(self.xh, c, z is not None)
            return
        multiple = self.padding()
        self.state = tuple(pad_rows(s, multiple) for s in state)
        self.inputs, self.z = pad_rows(inputs, multiple), pad_rows(z, multiple)

    def latent(self, model: SketchRNN, request: Request, rng: np.random.Generator) -> Tensor | None:
        """A VAE's z, (1, z) shared by the request's rows or (n, z) one per row: as given; else
        the encoder's mean for the drawing so far (the alternatives differ by sampling alone);
        else, drawing from nothing, one z from the prior per alternative. None for a decoder."""
        if model.config.mode != "vae":
            return None
        if request.z is not None:
            return request.z.to(self.device, torch.float32)
        if len(request.prefix):
            return encode(model, request.scale, [request.prefix])
        return torch.from_numpy(rng.standard_normal((request.n, model.config.z_size))).float().to(self.device)

    @torch.no_grad()
    def add(self, requests: list[Request], model: int = 0) -> None:
        """Prime every request's prefix with ``models[model]`` and append its n rows, which that
        model draws; the next ``step`` continues them.

        A request is read by one row (its n alternatives start alike) or, with one z per
        alternative, by n rows. Prefixes of one length are read together in one call of the fused
        kernel, rows padded as ``row_multiple`` says: a seeded row's state then depends on nothing
        else in the call, and a wave of arrivals costs one pass (60 requests: 81 ms one by one, ~10 together)."""
        # An unseeded request draws from the batch's stream: a fresh generator seeds itself from the
        # OS (~25 us), a cost every arrival would pay for nothing.
        rngs = [self.unseeded_rng if r.settings.seed is None else np.random.default_rng(r.settings.seed)
                for r in requests]
        decoder = self.models[model]
        latents = [self.latent(decoder, r, rng) for r, rng in zip(requests, rngs)]
        readers = [1 if z is None else len(z) for z in latents]  # rows reading each prefix
        units = [torch.from_numpy(stroke5(to_model_units(r.prefix, r.scale))).to(self.device) if len(r.prefix) else ()
                 for r in requests]
        z = None if latents[0] is None else torch.cat(latents)
        owner = np.repeat(np.arange(len(requests)), readers)
        state = decoder.initial_state(len(owner), z)
        # Built in numpy: small torch ops wake torch's thread pool (see take_rows), 10-30 us each here.
        pending = torch.from_numpy(np.tile(np.float32(S0), (len(owner), 1))).to(self.device)
        multiple = row_multiple(requests)
        for length in sorted({len(units[i]) for i in owner} - {0}):
            index = [row for row, i in enumerate(owner) if len(units[i]) == length]
            sequences = torch.stack([torch.cat([pending[row : row + 1], units[owner[row]][:-1]]) for row in index], 1)
            rows = torch.tensor(index, device=self.device)
            _, read = decoder.decode(pad_rows(sequences, multiple, 1),
                                        tuple(pad_rows(s[rows], multiple) for s in state),
                                        z=None if z is None else pad_rows(z[rows], multiple))
            state = tuple(s.index_copy(0, rows, r[: len(index)]) for s, r in zip(state, read))
            pending = pending.index_copy(0, rows, torch.stack([units[owner[row]][-1] for row in index]))
        # One reader per request: its n alternatives start from copies of its state.
        counts = np.concatenate([[r.n] if k == 1 else np.ones(k, dtype=np.int64) for r, k in zip(requests, readers)])
        if len(owner) < counts.sum():
            copies = torch.from_numpy(np.repeat(np.arange(len(owner)), counts)).to(self.device)
            state, pending, z = tuple(s[copies] for s in state), pending[copies], None if z is None else z[copies]
        self._append(requests, rngs, state, pending, z, model)

    def _append(self, requests, rngs, state, inputs, z, model) -> None:
        def per_row(values, dtype=None):
            return np.repeat(np.asarray(values, dtype=dtype), [r.n for r in requests], axis=0)

        self.requests += requests
        self.rngs += rngs
        self.rows += [(r, k) for r in requests for k in range(r.n)]
        live = len(self.rows) - len(inputs)  # rows before these requests
        if self.state is not None:
            state = tuple(join_rows(a[:live], b) for a, b in zip(self.state, state))
            inputs = join_rows(self.inputs[:live], inputs)
            z = None if z is None else join_rows(self.z[:live], z)
        self._set_rows(state, inputs, z)
        self.position = np.concatenate([self.position, per_row([r.origin for r in requests], np.float64)])
        self.count = np.concatenate([self.count, per_row([0] * len(requests), np.int64)])
        self.live = np.concatenate([self.live, per_row([True] * len(requests), bool)])
        self.scale = np.concatenate([self.scale, per_row([r.scale for r in requests], np.float64)])
        self.cap = np.concatenate([self.cap, per_row([r.settings.max_points for r in requests], np.int64)])
        self.temperature = np.concatenate([self.temperature, per_row([r.settings.temperature for r in requests])])
        self.discrete_temperature = np.concatenate([self.discrete_temperature,
                                                    per_row([r.settings.discrete_temperature for r in requests])])
        self.greedy = np.concatenate([self.greedy, per_row([r.settings.greedy for r in requests], bool)])
        self.exact = np.concatenate([self.exact, per_row([needs_exact(r) for r in requests], bool)])
        self.model_of = np.concatenate([self.model_of, per_row([model] * len(requests), np.int64)])

    def step(self) -> Points:
        """Sample one point on every row. Rows that ended earlier are stepped too (their request
        still draws) but draw nothing."""
        rows = len(self.rows)
        if self.numpy_steps:
            out = self.lstm_step(self.xh, self.state[1].numpy(), self.exact, self.model_of)
        else:
            with torch.no_grad():
                out, self.state = self.model.decode(self.inputs[None], self.state, z=self.z)
            out = out[0].float().cpu().numpy()
        uniforms, normals = self.unseeded_rng.random((rows, 2)), self.unseeded_rng.standard_normal((rows, 2))
        row = 0
        for r, rng in zip(self.requests, self.rngs):
            if r.settings.seed is not None:
                uniforms[row : row + r.n] = rng.random((r.n, 2))
                normals[row : row + r.n] = rng.standard_normal((r.n, 2))
            row += r.n
        xy, pen = sample_points(out[:rows], self.model.config.mixtures, self.temperature, self.discrete_temperature,
                                self.greedy, uniforms, normals, self.count > 0)
        # The sampled point as the next stroke-5 input: [dx, dy, one-hot pen].
        inputs = np.zeros(self.inputs.shape, dtype=np.float32)
        inputs[:rows, :2] = xy
        inputs[np.arange(rows), pen + 2] = 1.0
        if self.numpy_steps:
            self.inputs.numpy()[:] = inputs  # a view of xh: where the next product reads them
        else:
            self.inputs = torch.from_numpy(inputs).to(self.device)
        offset = xy * self.scale[:, None]
        ended = self.live & (pen == 2)
        drawn = self.live & (pen != 2)
        self.position += np.where(drawn[:, None], offset, 0.0)
        self.count += drawn
        capped = drawn & (self.count >= self.cap)
        self.live = drawn & ~capped
        return Points(list(self.rows), offset, self.position.copy(), pen == 1, drawn, ended, capped,
                      self.count.copy())

    def drop_finished(self) -> list[Request]:
        """Remove the requests none of whose rows still draws; returns them."""
        if self.live.all():
            return []
        live = {r for (r, _), alive in zip(self.rows, self.live) if alive}
        return self.remove([r for r in self.requests if r not in live])

    def remove(self, requests: list[Request]) -> list[Request]:
        """Remove these requests' rows (those not in the batch are ignored); returns them."""
        gone = set(requests)
        if not gone:
            return []
        keep = np.array([r not in gone for r, _ in self.rows], dtype=bool)
        index = np.flatnonzero(keep)
        self.rngs = [g for r, g in zip(self.requests, self.rngs) if r not in gone]
        self.requests = [r for r in self.requests if r not in gone]
        self.rows = [row for row, kept in zip(self.rows, keep) if kept]
        self._set_rows(tuple(take_rows(s, index) for s in self.state), take_rows(self.inputs, index),
                       take_rows(self.z, index))
        for name in ("position", "count", "live", "scale", "cap", "temperature", "discrete_temperature", "greedy",
                     "exact", "model_of"):
            setattr(self, name, getattr(self, name)[keep])
        return list(gone)


def set_threads(count: int) -> None:
    """Sample on ``count`` threads: torch's (priming, other cells, a GPU) and numpy's BLAS pool
    (LSTMStep), which would otherwise start one thread per core in every server process."""
    torch.set_num_threads(count)
    threadpool_limits(count, user_api="blas")


@torch.no_grad()
def complete(model: SketchRNN, request: Request) -> list[np.ndarray]:
    """Sample the request's n alternatives to their ends: each one's stroke-3, drawing units."""
    batch = Batch(model)
    batch.add([request])
    drawn = [[] for _ in range(request.n)]
    while len(batch):
        points = batch.step()
        for row in np.flatnonzero(points.drawn):
            drawn[points.rows[row][1]].append([*points.offset[row], float(points.lifted[row])])
        batch.drop_finished()
    return [np.array(d, dtype=np.float32).reshape(-1, 3) for d in drawn]


def sample(model: SketchRNN, scale: float, n: int, settings: Settings, z: Tensor | None = None) -> list[np.ndarray]:
    """n drawings from nothing (a VAE: one z from the prior each, or the given z)."""
    return complete(model, Request(np.zeros((0, 3), dtype=np.float32), scale, n, settings, z))
