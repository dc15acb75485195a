"""Recurrent cells behind one interface, ``cell(x_t, state) -> (h_t, state)``, picked by name.

Each cell splits its step in two so that a layer can unroll it fast: ``project_input(x)`` is the
part that depends on the input alone (one matmul for every time step at once, outside the time
loop) and ``step(xp_t, state)`` is the part that must run once per step. ``cell(x_t, state)`` is
the two together. A state is always a tuple of ``(batch, size)`` tensors, ``h`` first.

Gate order is torch's (i, f, g, o) everywhere, so the plain cells share ``torch.nn``'s parameter
layout and can run on its fused kernels (see ``layers.py``).
"""

import math

import torch
import torch.nn.functional as F
from torch import _VF, Tensor, nn

State = tuple[Tensor, ...]

LAYER_NORM_EPS = 1e-3  # Magenta sketch_rnn's epsilon; larger than torch's 1e-5 default
FORGET_BIAS = 1.0  # start with the forget gate open (Jozefowicz et al. 2015), as Magenta does


def fast_dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """``F.dropout`` with its mask drawn by ``torch.rand``: on the CPU ``bernoulli_`` is 2.5x
    slower (16 vs 6.5 ms for a 100x64x256 text batch, a quarter of a training step there)."""
    if not training or p == 0:
        return x
    # The mask is built in place, outside autograd: one multiplication for backward to undo.
    return x * torch.rand_like(x).ge_(p).mul_(1 / (1 - p))


def _orthogonal_blocks(weight: Tensor, blocks: int) -> None:
    """Orthogonal init of each (hidden x hidden) gate block of a recurrent weight, as Magenta's
    ``lstm_ortho_initializer``: each gate then starts norm-preserving on its own."""
    with torch.no_grad():
        for block in weight.chunk(blocks, 0):
            nn.init.orthogonal_(block)


class RecurrentCell(nn.Module):
    """Base of all cells: the shared interface and defaults."""

    hidden_size: int
    state_sizes: tuple[int, ...]  # width of each tensor in the state tuple
    fused_mode: str | None = None  # torch._VF kernel computing the same function, if any
    dropout: float = 0.0  # recurrent dropout probability (LSTM family only)
    # True where step's pre-activation is xp + state[0] @ weight_hh.T and step takes the weight as
    # an argument (a detached tensor, or a callable computing that sum: layers.PackedRecurrentWeight):
    # the layer then forms weight_hh's gradient for a whole sequence in one matmul.
    additive_recurrence: bool = False

    def initial_state(self, batch: int) -> State:
        weight = next(self.parameters())
        return tuple(weight.new_zeros(batch, n) for n in self.state_sizes)

    def project_input(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def step(self, xp: Tensor, state: State) -> tuple[Tensor, State]:
        """One step from the projected input ``xp`` (``project_input``'s, one time step)."""
        raise NotImplementedError

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        if state is None:
            state = self.initial_state(x.shape[0])
        return self.step(self.project_input(x), state)


def recurrent_sum(xp: Tensor, h: Tensor, weight) -> Tensor:
    """xp + h @ weight.T, ``weight`` the (G, H) recurrent weight or a callable ``(xp, h)`` computing
    the same (a weight prepacked for a whole sequence)."""
    return weight(xp, h) if callable(weight) else torch.addmm(xp, h, weight.t())


def _lstm_update(gates: Tensor, c: Tensor, dropout: float, training: bool, cell_norm=None) -> tuple[Tensor, State]:
    """The LSTM state update from (B, 4, H) gate pre-activations in (i, f, g, o) order.

    Recurrent dropout without memory loss (Semeniuta et al. 2016) drops only the candidate g,
    never the cell state itself, so long-term memory survives the noise. ``cell_norm``, if
    given, normalises c where it feeds h (the carried c stays raw).
    """
    # One unbind, then each gate's own activation: backward stacks the four gradients once. (A
    # sigmoid over all four blocks and a second unbind for g cost a second stack and a sum of the
    # two: training 15-35% slower at batch 32-100; indexing would zero-fill and copy per gate.)
    i, f, g, o = gates.unbind(1)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    if dropout > 0:
        g = fast_dropout(g, dropout, training)
    c = torch.addcmul(f * c, i, g)
    h = o * torch.tanh(c if cell_norm is None else cell_norm(c))
    return h, (h, c)


class _TorchLayoutCell(RecurrentCell):
    """Cells whose parameters are laid out exactly as ``torch.nn.RNNCell/GRUCell/LSTMCell``."""

    def __init__(self, input_size: int, hidden_size: int, gates: int):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(gates * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(gates * hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(gates * hidden_size))
        self.bias_hh = nn.Parameter(torch.empty(gates * hidden_size))
        bound = 1.0 / math.sqrt(hidden_size)  # torch.nn's default, so results compare with it
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def fused_weights(self) -> list[Tensor]:
        return [self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh]

    def fused_step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        """``forward`` in one call of torch's fused cell kernel (what ``nn.LSTMCell`` & co. run):
        the same function without recurrent dropout. A sampler's step at batch 1 is a handful of
        microseconds of arithmetic, so the dozen calls of the unfused step would cost more."""
        kernel = getattr(_VF, f"{self.fused_mode}_cell")
        if self.fused_mode == "lstm":
            h, c = kernel(x, state, *self.fused_weights())
            return h, (h, c)
        h = kernel(x, state[0], *self.fused_weights())
        return h, (h,)


class ElmanCell(_TorchLayoutCell):
    """Elman RNN: h' = tanh(W_ih x + b_ih + W_hh h + b_hh). Kept with torch's init so its
    vanishing gradients show as they classically do."""

    fused_mode = "rnn_tanh"
    additive_recurrence = True

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__(input_size, hidden_size, gates=1)
        self.state_sizes = (hidden_size,)

    def project_input(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_ih, self.bias_ih + self.bias_hh)

    def step(self, xp: Tensor, state: State, weight_hh=None) -> tuple[Tensor, State]:
        h = torch.tanh(recurrent_sum(xp, state[0], self.weight_hh if weight_hh is None else weight_hh))
        return h, (h,)


class GRUCell(_TorchLayoutCell):
    """GRU (Cho et al. 2014) in torch's form: the reset gate multiplies W_hn h + b_hn."""

    fused_mode = "gru"

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__(input_size, hidden_size, gates=3)
        self.state_sizes = (hidden_size,)

    def project_input(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_ih, self.bias_ih)

    def step(self, xp: Tensor, state: State) -> tuple[Tensor, State]:
        h = state[0]
        xr, xz, xn = xp.chunk(3, 1)
        hr, hz, hn = F.linear(h, self.weight_hh, self.bias_hh).chunk(3, 1)
        r = torch.sigmoid(xr + hr)
        z = torch.sigmoid(xz + hz)
        n = torch.tanh(torch.addcmul(xn, r, hn))
        h = torch.lerp(n, h, z)  # (1 - z) * n + z * h
        return h, (h,)


class LSTMCell(_TorchLayoutCell):
    """LSTM (Hochreiter & Schmidhuber 1997) with forget-gate bias +1.0, orthogonal recurrent
    blocks, and optional recurrent dropout on the candidate."""

    fused_mode = "lstm"
    additive_recurrence = True

    def __init__(self, input_size: int, hidden_size: int, dropout: float = 0.0):
        super().__init__(input_size, hidden_size, gates=4)
        self.state_sizes = (hidden_size, hidden_size)
        self.dropout = dropout
        _orthogonal_blocks(self.weight_hh, 4)
        with torch.no_grad():
            self.bias_ih.zero_()
            self.bias_hh.zero_()
            self.bias_ih[hidden_size : 2 * hidden_size] = FORGET_BIAS

    def project_input(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_ih, self.bias_ih + self.bias_hh)

    def step(self, xp: Tensor, state: State, weight_hh=None) -> tuple[Tensor, State]:
        h, c = state
        gates = recurrent_sum(xp, h, self.weight_hh if weight_hh is None else weight_hh)
        gates = gates.unflatten(1, (4, self.hidden_size))
        return _lstm_update(gates, c, self.dropout, self.training)


class LayerNormGates(nn.Module):
    """The part of a layer-norm LSTM after the matmuls, with Magenta sketch_rnn's semantics: each
    of the four gate blocks is normalised on its own, no bias besides the norms' beta, and the
    cell state is normalised only where it feeds h (the carried c stays raw)."""

    def __init__(self, hidden_size: int, dropout: float = 0.0):
        super().__init__()
        self.hidden_size, self.dropout = hidden_size, dropout
        self.gate_gain = nn.Parameter(torch.ones(4, hidden_size))
        self.gate_bias = nn.Parameter(torch.zeros(4, hidden_size))
        self.cell_gain = nn.Parameter(torch.ones(hidden_size))
        self.cell_bias = nn.Parameter(torch.zeros(hidden_size))
        with torch.no_grad():
            # Magenta adds a constant +1.0 to f after the norm; a learnable beta that starts
            # there is the same function at init.
            self.gate_bias[1] = FORGET_BIAS

    def forward(self, preactivation: Tensor, c: Tensor) -> tuple[Tensor, State]:
        """(B, 4, H) gate pre-activations and the cell state -> (h, (h, c))."""
        z = F.layer_norm(preactivation, (self.hidden_size,), eps=LAYER_NORM_EPS)
        return _lstm_update(torch.addcmul(self.gate_bias, z, self.gate_gain), c, self.dropout, self.training,
                            self.norm_cell)

    def norm_cell(self, c: Tensor) -> Tensor:
        return F.layer_norm(c, (self.hidden_size,), self.cell_gain, self.cell_bias, LAYER_NORM_EPS)


class LayerNormLSTMCell(RecurrentCell):
    """Layer-normalised LSTM (Ba, Kiros & Hinton 2016) as Magenta sketch_rnn's LayerNormLSTMCell."""

    additive_recurrence = True  # the norm comes after the sum

    def __init__(self, input_size: int, hidden_size: int, dropout: float = 0.0):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.state_sizes = (hidden_size, hidden_size)
        self.dropout = dropout
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.norm = LayerNormGates(hidden_size, dropout)
        nn.init.xavier_uniform_(self.weight_ih)
        _orthogonal_blocks(self.weight_hh, 4)

    def project_input(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_ih)

    def step(self, xp: Tensor, state: State, weight_hh=None) -> tuple[Tensor, State]:
        h, c = state
        preactivation = recurrent_sum(xp, h, self.weight_hh if weight_hh is None else weight_hh)
        return self.norm(preactivation.unflatten(1, (4, self.hidden_size)), c)


class HyperLSTMCell(RecurrentCell):
    """HyperLSTM (Ha, Dai & Le 2016, "HyperNetworks") as in Magenta sketch_rnn.

    A small layer-norm LSTM (the hyper cell) reads [x, h] and emits, per step, embeddings that
    rescale each gate's input contribution W_x x and recurrent contribution W_h h, and shift the
    recurrent one:

        z_gate = d_x(e) * (W_x x) + d_h(e) * (W_h h) + b_h(e) + bias,   then layer norm per gate

    where each d/b is an ``embedding_size``-dim code from the hyper state projected to ``hidden``.
    Initialised so every scale is exactly 1 and every shift 0: the cell starts as a plain LN-LSTM.
    (Magenta starts its scales at 0.1; under layer norm that only differs through epsilon.)

    Both cells read x and h, so their weights on each are stacked, main rows first: one matmul
    per input and step instead of two.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        dropout: float = 0.0,
        hyper_size: int = 256,  # Magenta's hyper_num_units
        embedding_size: int = 32,  # Magenta's hyper_embedding_size
    ):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.hyper_size, self.embedding_size = hyper_size, embedding_size
        self.state_sizes = (hidden_size, hidden_size, hyper_size, hyper_size)
        self.dropout = dropout
        rows = 4 * hidden_size + 4 * hyper_size
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size))  # [main W_x; hyper W_x]
        self.weight_hh = nn.Parameter(torch.empty(rows, hidden_size))  # [main W_h; hyper W_h]
        self.hyper_weight_hh = nn.Parameter(torch.empty(4 * hyper_size, hyper_size))
        self.bias = nn.Parameter(torch.zeros(4 * hidden_size))
        self.norm = LayerNormGates(hidden_size, dropout)
        self.hyper_norm = LayerNormGates(hyper_size)
        # 12 codes: 4 input scales, 4 recurrent scales, 4 recurrent shifts.
        self.to_codes = nn.Linear(hyper_size, 12 * embedding_size)
        self.code_to_gate = nn.Parameter(torch.empty(12, embedding_size, hidden_size))
        main = 4 * hidden_size
        with torch.no_grad():
            nn.init.xavier_uniform_(self.weight_ih[:main])
            _orthogonal_blocks(self.weight_hh[:main], 4)
            # The hyper cell's input is [x, h]: init its weights on both as one matrix.
            hyper_in = torch.empty(4 * hyper_size, input_size + hidden_size)
            nn.init.xavier_uniform_(hyper_in)
            self.weight_ih[main:], self.weight_hh[main:] = hyper_in.split([input_size, hidden_size], 1)
            _orthogonal_blocks(self.hyper_weight_hh, 4)
            self.to_codes.weight.zero_()
            self.to_codes.weight[8 * embedding_size :].normal_(0.0, 0.01)
            self.to_codes.bias.fill_(1.0)
            self.to_codes.bias[8 * embedding_size :] = 0.0
            self.code_to_gate.fill_(1.0 / embedding_size)  # scale = sum(1 * 1/E) = 1
            self.code_to_gate[8:] = 0.0  # shift = 0

    def project_input(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_ih)

    def step(self, xp: Tensor, state: State) -> tuple[Tensor, State]:
        h, c, hyper_h, hyper_c = state
        split = [4 * self.hidden_size, 4 * self.hyper_size]
        xw, hyper_xw = xp.split(split, -1)
        hw, hyper_hw = F.linear(h, self.weight_hh).split(split, -1)
        hyper_z = torch.addmm(hyper_xw + hyper_hw, hyper_h, self.hyper_weight_hh.t())
        hyper_out, (hyper_h, hyper_c) = self.hyper_norm(hyper_z.unflatten(1, (4, self.hyper_size)), hyper_c)
        codes = self.to_codes(hyper_out).unflatten(-1, (12, self.embedding_size))
        # (12, B, E) @ (12, E, H) -> (12, B, H): each code projected by its own matrix.
        d = torch.bmm(codes.transpose(0, 1), self.code_to_gate)
        gate_major = (4, self.hidden_size)
        xw = xw.unflatten(1, gate_major).transpose(0, 1)  # (4, B, H) views
        hw = hw.unflatten(1, gate_major).transpose(0, 1)
        z = torch.addcmul(torch.addcmul(d[8:] + self.bias.view(4, 1, -1), d[:4], xw), d[4:8], hw)
        h, (h, c) = self.norm(z.transpose(0, 1), c)
        return h, (h, c, hyper_h, hyper_c)


CELLS: dict[str, type[RecurrentCell]] = {
    "rnn": ElmanCell,
    "gru": GRUCell,
    "lstm": LSTMCell,
    "layer_norm": LayerNormLSTMCell,
    "hyper": HyperLSTMCell,
}


def make_cell(name: str, input_size: int, hidden_size: int, dropout: float = 0.0) -> RecurrentCell:
    """Build a cell by name. ``dropout`` is recurrent dropout on the LSTM family's candidate;
    Magenta's keep probability 0.9 is dropout=0.1."""
    if name not in CELLS:
        raise ValueError(f"unknown cell {name!r}: choose one of {', '.join(CELLS)}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"recurrent dropout must be in [0, 1), got {dropout}")
    if dropout and name in ("rnn", "gru"):
        raise ValueError(f"recurrent dropout is defined for the LSTM family only, not {name!r}")
    if name in ("rnn", "gru"):
        return CELLS[name](input_size, hidden_size)
    return CELLS[name](input_size, hidden_size, dropout=dropout)
