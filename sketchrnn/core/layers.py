"""Unrolling cells through time: one layer, its bidirectional pair, and stacks of them.

Tensors are time-major. A padded batch of B sequences of lengths L_b, longest T:

    x:        (T, B, input)      x[t, b] is step t of sequence b; steps t >= L_b are padding
    outputs:  (T, B, hidden)     zero at padding
    state:    tuple of (B, n)    each sequence's state after its own last step L_b - 1

          b=0  b=1  b=2
    t=0    x    x    x
    t=1    x    x    x
    t=2    x    x    .      <- lengths = [4, 3, 2]; '.' is padding, never read
    t=3    x    .    .
"""

import functools
import warnings

import torch
from torch import _VF, Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from sketchrnn.core.cells import RecurrentCell, State, fast_dropout, make_cell

# Below this many steps the fused sequence kernel's per-call setup (oneDNN on CPU) costs more than
# the Python loop saves (one step through it is about 10x a cell step); a single step takes the
# fused cell kernel instead.
FUSED_MIN_STEPS = 8

# Our cells own their weights as separate parameters, so cuDNN repacks them on every call and
# warns each time; measured on an H100 this costs nothing visible (bench/gpu_check.py).
warnings.filterwarnings("ignore", message="RNN module weights are not part of single contiguous")


def _alive_mask(lengths: Tensor, steps: int) -> Tensor:
    """(T, B, 1) bool: True where step t is a real step of sequence b."""
    t = torch.arange(steps, device=lengths.device)
    return (t[:, None] < lengths[None, :])[..., None]


class _RecurrentWeightGrad(torch.autograd.Function):
    """The identity on a sequence's projected inputs xp (T, B, G) whose backward also returns the
    gradient of the recurrent weight W (G, H) for the whole sequence, in one matmul:

        pre_t = xp_t + h_{t-1} W^T   =>   d pre_t = d xp_t,   dW = sum_t d xp_t^T h_{t-1}
                                                               = (T*B, G)^T @ (T*B, H)

    The loop multiplies by a detached W, so autograd neither forms a (G, H) gradient per step nor
    adds T of them into W.grad (measured: 6-12% of a layer-norm or dropout LSTM's training step).
    ``previous_h`` is filled with h_{t-1} while the loop runs, before backward reads it."""

    @staticmethod
    def forward(ctx, xp: Tensor, weight: Tensor, previous_h: list) -> Tensor:
        ctx.previous_h, ctx.weight_dtype = previous_h, weight.dtype
        return xp.view_as(xp)

    @staticmethod
    def backward(ctx, grad: Tensor):
        previous_h = torch.stack(ctx.previous_h).to(grad.dtype)  # under autocast h may be bf16
        return grad, (grad.flatten(0, 1).t() @ previous_h.flatten(0, 1)).to(ctx.weight_dtype), None


# oneDNN's linear on a weight reordered once for it ("prepacked"), as nn.LSTM's kernel uses it.
ONEDNN_LINEAR = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")


class PackedRecurrentWeight:
    """A recurrent weight W (G, H) prepacked by oneDNN for one sequence's loop on the CPU, called
    as ``(xp, h) -> xp + h W^T``; backward's ``d W`` uses W^T packed the same way, at the first
    backward step. At 32 x 512 x 2048 (a text model's step) each product takes ~0.32 ms against
    addmm's and mm's ~0.48, on 100 x 512 x 2048 (Sketch-RNN's) 0.95 against 1.23; packing costs
    ~0.28 ms a direction, which a loop of FUSED_MIN_STEPS or more repays. W's gradient is not formed
    here (the loop's weight is detached; see _RecurrentWeightGrad)."""

    def __init__(self, weight: Tensor, batch: int):
        self.weight, self.batch = weight, batch
        self.packed = torch.ops.mkldnn._reorder_linear_weight(weight, batch)
        self.packed_transposed = None

    @staticmethod
    def fits(weight: Tensor, x: Tensor, steps: int) -> bool:
        """Worth packing and computed the same way (float32 on the CPU, not under autocast)."""
        return (ONEDNN_LINEAR and steps >= FUSED_MIN_STEPS and weight.device.type == "cpu"
                and weight.dtype == x.dtype == torch.float32 and not torch.is_autocast_enabled("cpu"))

    def __call__(self, xp: Tensor, h: Tensor) -> Tensor:
        return _PackedProduct.apply(xp, h, self)

    def backward_product(self, grad: Tensor) -> Tensor:
        """grad @ W, (B, G) -> (B, H)."""
        if self.packed_transposed is None:
            self.packed_transposed = torch.ops.mkldnn._reorder_linear_weight(self.weight.t().contiguous(), self.batch)
        return torch.ops.mkldnn._linear_pointwise(grad.contiguous(), self.packed_transposed, None, "none", [], "")


class _PackedProduct(torch.autograd.Function):
    """xp + h W^T on a PackedRecurrentWeight, in one oneDNN call (the sum fused into the product)."""

    @staticmethod
    def forward(ctx, xp: Tensor, h: Tensor, weight: PackedRecurrentWeight) -> Tensor:
        ctx.weight = weight
        return torch.ops.mkldnn._linear_pointwise.binary(h, xp, weight.packed, None, "add")

    @staticmethod
    def backward(ctx, grad: Tensor):
        return grad, ctx.weight.backward_product(grad) if ctx.needs_input_grad[1] else None, None


def compiled(step):
    """``step`` through torch.compile, or ``step`` itself, with one warning, where compiling fails
    (no C++ compiler for the CPU backend, no Triton for CUDA): compilation happens at the first
    call, so that is where the fallback is decided."""
    fast = torch.compile(step, dynamic=False)
    chosen = None

    @functools.wraps(step)
    def run(*args):
        nonlocal chosen
        if chosen is None:
            try:
                result, chosen = fast(*args), fast
                return result
            except Exception as error:  # noqa: BLE001 - any compiler failure: run eagerly instead
                warnings.warn(f"torch.compile failed, the cell steps eagerly: {type(error).__name__}: {error}",
                              stacklevel=2)
                chosen = step
        return chosen(*args)

    return run


def compile_steps(module: nn.Module) -> int:
    """Compile the step of every unrolled cell in ``module`` (``--compile``): the loop then runs
    a few fused kernels a step instead of a dozen or two. Returns how many layers it compiled."""
    layers = [m for m in module.modules() if isinstance(m, RecurrentLayer)]
    for layer in layers:
        layer.compiled_step = compiled(layer.cell.step)
    return len(layers)


class RecurrentLayer(nn.Module):
    """Unrolls one cell over a padded, time-major batch."""

    def __init__(self, cell: RecurrentCell, fused: bool = True):
        super().__init__()
        self.cell = cell
        self.fused = fused  # allow torch's fused kernel where it computes the same function
        self.compiled_step = None  # the cell's step through torch.compile (compile_steps)

    def fused_allowed(self) -> bool:
        """torch's fused kernels compute this cell's function now (they know no recurrent dropout)."""
        cell = self.cell
        return self.fused and cell.fused_mode is not None and not (cell.dropout > 0 and self.training)

    def forward(
        self, x: Tensor, lengths: Tensor | None = None, state: State | None = None
    ) -> tuple[Tensor, State]:
        steps, batch = x.shape[:2]
        if state is None:
            state = self.cell.initial_state(batch)
        if lengths is not None:
            lengths = lengths.to(x.device)
            if bool((lengths == steps).all()):
                lengths = None  # nothing padded: skip the masking
        if self.fused_allowed() and steps >= FUSED_MIN_STEPS:
            return self._fused(x, lengths, state)
        if self.fused_allowed() and steps == 1 and lengths is None:  # a sampler's step
            h, state = self.cell.fused_step(x[0], state)
            return h[None], state
        # One matmul for the input side of every step; the loop does only the recurrent part.
        # Iterate with unbind: indexing xp[t] inside the loop makes backward O(T^2).
        xp = self.cell.project_input(x)
        cell_step = step = self.compiled_step or self.cell.step
        if self.cell.additive_recurrence:
            weight_hh = self.cell.weight_hh
            previous_h: list[Tensor] | None = None
            if torch.is_grad_enabled() and weight_hh.requires_grad:
                previous_h = []
                xp = _RecurrentWeightGrad.apply(xp, weight_hh, previous_h)
                weight_hh = weight_hh.detach()
            if self.compiled_step is None and PackedRecurrentWeight.fits(weight_hh, xp, steps):
                weight_hh = PackedRecurrentWeight(weight_hh, batch)

            def step(xp_t, state):
                if previous_h is not None:
                    previous_h.append(state[0].detach())
                return cell_step(xp_t, state, weight_hh)

        if lengths is None:
            outputs = []
            for xp_t in xp.unbind(0):
                h, state = step(xp_t, state)
                outputs.append(h)
            return torch.stack(outputs), state
        alive = _alive_mask(lengths, steps)
        all_alive = int(lengths.min())  # before this step no sequence has ended: no masking
        outputs = []
        for t, (xp_t, alive_t) in enumerate(zip(xp.unbind(0), alive.unbind(0))):
            h, new_state = step(xp_t, state)
            if t >= all_alive:
                # A finished sequence keeps its last state and outputs zeros.
                new_state = tuple(torch.where(alive_t, n, s) for n, s in zip(new_state, state))
                h = h * alive_t
            state = new_state
            outputs.append(h)
        return torch.stack(outputs), state

    def _fused(self, x: Tensor, lengths: Tensor | None, state: State) -> tuple[Tensor, State]:
        """The same function through torch's fused kernel (what ``nn.LSTM`` runs)."""
        kernel = getattr(_VF, self.cell.fused_mode)
        weights = self.cell.fused_weights()
        hx = tuple(s.unsqueeze(0) for s in state)  # (layers=1, B, n)
        hx = hx if self.cell.fused_mode == "lstm" else hx[0]
        if lengths is None:
            out, *final = kernel(x, hx, weights, True, 1, 0.0, self.training, False, False)
            return out, tuple(s.squeeze(0) for s in final)
        packed = pack_padded_sequence(x, lengths.cpu(), enforce_sorted=False)
        order, unorder = packed.sorted_indices, packed.unsorted_indices
        hx = tuple(h[:, order] for h in hx) if isinstance(hx, tuple) else hx[:, order]
        out, *final = kernel(packed.data, packed.batch_sizes, hx, weights, True, 1, 0.0, self.training, False)
        out, _ = pad_packed_sequence(
            PackedSequence(out, packed.batch_sizes, order, unorder), total_length=x.shape[0]
        )
        return out, tuple(s[0, unorder] for s in final)


def reverse_padded(x: Tensor, lengths: Tensor | None) -> Tensor:
    """Reverse each sequence within its own length; padding stays where it is.

    [a b c .]  ->  [c b a .]   so a backward pass starts at the sequence's true end.
    """
    if lengths is None:
        return x.flip(0)
    steps = x.shape[0]
    t = torch.arange(steps, device=x.device)[:, None]
    lengths = lengths.to(x.device)[None, :]
    index = torch.where(t < lengths, lengths - 1 - t, t)  # (T, B)
    return x.gather(0, index[..., None].expand_as(x))


class BidirectionalLayer(nn.Module):
    """A forward and a backward layer; outputs concatenated as [forward, backward]."""

    def __init__(self, forward_layer: RecurrentLayer, backward_layer: RecurrentLayer):
        super().__init__()
        self.forward_layer, self.backward_layer = forward_layer, backward_layer

    def forward(
        self, x: Tensor, lengths: Tensor | None = None, state: tuple[State, State] | None = None
    ) -> tuple[Tensor, tuple[State, State]]:
        forward_state, backward_state = state if state is not None else (None, None)
        out_f, final_f = self.forward_layer(x, lengths, forward_state)
        out_b, final_b = self.backward_layer(reverse_padded(x, lengths), lengths, backward_state)
        return torch.cat([out_f, reverse_padded(out_b, lengths)], -1), (final_f, final_b)

    def last_outputs(self, x: Tensor, lengths: Tensor) -> Tensor:
        """[forward h, backward h] at each sequence's own end, (B, 2 x hidden): the same numbers as
        the final h of ``forward`` with ``lengths``, without packing. Each direction runs over the
        whole padded batch and is read at step length - 1 (the backward one over the sequences
        reversed within their lengths): on the CPU the backward of a packed sequence allocates a
        gradient the size of the whole input at every step, quadratic in length."""
        out_f, _ = self.forward_layer(x)
        out_b, _ = self.backward_layer(reverse_padded(x, lengths))
        last = (lengths.to(x.device) - 1).clamp_min(0)[None, :, None].expand(1, -1, out_f.shape[-1])
        return torch.cat([out_f.gather(0, last)[0], out_b.gather(0, last)[0]], -1)


class RecurrentStack(nn.Module):
    """Stacked recurrent layers, any cell by name; state is a list with one entry per layer."""

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,  # recurrent dropout inside each cell (LSTM family)
        layer_dropout: float = 0.0,  # dropout on the outputs between layers
        fused: bool = True,
    ):
        super().__init__()
        self.hidden_size, self.bidirectional = hidden_size, bidirectional
        self.output_size = hidden_size * (2 if bidirectional else 1)
        self.layer_dropout = layer_dropout

        def layer(size):
            return RecurrentLayer(make_cell(cell, size, hidden_size, dropout), fused)

        layers = []
        for i in range(num_layers):
            size = input_size if i == 0 else self.output_size
            layers.append(BidirectionalLayer(layer(size), layer(size)) if bidirectional else layer(size))
        self.layers = nn.ModuleList(layers)

    def initial_state(self, batch: int) -> list:
        def init(layer):
            if isinstance(layer, BidirectionalLayer):
                return (init(layer.forward_layer), init(layer.backward_layer))
            return layer.cell.initial_state(batch)

        return [init(layer) for layer in self.layers]

    def forward(self, x: Tensor, lengths: Tensor | None = None, state: list | None = None) -> tuple[Tensor, list]:
        state = state if state is not None else [None] * len(self.layers)
        finals = []
        for i, (layer, layer_state) in enumerate(zip(self.layers, state)):
            if i > 0 and self.layer_dropout > 0:
                x = fast_dropout(x, self.layer_dropout, self.training)
            x, final = layer(x, lengths, layer_state)
            finals.append(final)
        return x, finals
