"""The cells and layers compute what torch.nn computes, padded or not, in one call or several."""

import pytest
import torch
from torch import nn

from sketchrnn.core import CELLS, RecurrentLayer, RecurrentStack, compile_steps, make_cell
from sketchrnn.core.cells import HyperLSTMCell, LayerNormLSTMCell
from sketchrnn.core.layers import ONEDNN_LINEAR, PackedRecurrentWeight

TOL = dict(atol=1e-5, rtol=1e-5)


def copy_torch_cell(ours, theirs):
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(ours, name).copy_(getattr(theirs, name))


@pytest.mark.parametrize(
    "name, torch_cell", [("rnn", nn.RNNCell), ("gru", nn.GRUCell), ("lstm", nn.LSTMCell)]
)
def test_cell_step_matches_torch_cell(name, torch_cell):
    torch.manual_seed(0)
    theirs = torch_cell(7, 16)
    ours = make_cell(name, 7, 16)
    copy_torch_cell(ours, theirs)
    x = torch.randn(5, 7)
    state = tuple(torch.randn(5, 16) for _ in ours.state_sizes)
    h, new_state = ours(x, state)
    expected = theirs(x, state if name == "lstm" else state[0])
    expected = expected if name == "lstm" else (expected,)
    for a, b in zip(new_state, expected):
        torch.testing.assert_close(a, b, **TOL)
    torch.testing.assert_close(h, expected[0], **TOL)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("name, torch_rnn", [("rnn", nn.RNN), ("gru", nn.GRU), ("lstm", nn.LSTM)])
def test_stack_matches_torch_multilayer_bidirectional(name, torch_rnn, fused):
    torch.manual_seed(1)
    theirs = torch_rnn(6, 12, num_layers=2, bidirectional=True)
    ours = RecurrentStack(name, 6, 12, num_layers=2, bidirectional=True, fused=fused)
    for i, layer in enumerate(ours.layers):
        for suffix, direction in (("", layer.forward_layer), ("_reverse", layer.backward_layer)):
            with torch.no_grad():
                for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(direction.cell, p).copy_(getattr(theirs, f"{p}_l{i}{suffix}"))
    lengths = torch.tensor([20, 13, 1, 20, 7])
    x = torch.randn(20, 5, 6)
    packed = nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
    out_packed, final = theirs(packed)
    expected, _ = nn.utils.rnn.pad_packed_sequence(out_packed, total_length=20)
    out, states = ours(x, lengths)
    torch.testing.assert_close(out, expected, **TOL)
    h_n = final[0] if name == "lstm" else final
    for i, (fwd, bwd) in enumerate(states):
        torch.testing.assert_close(fwd[0], h_n[2 * i], **TOL)
        torch.testing.assert_close(bwd[0], h_n[2 * i + 1], **TOL)
        if name == "lstm":
            torch.testing.assert_close(fwd[1], final[1][2 * i], **TOL)
            torch.testing.assert_close(bwd[1], final[1][2 * i + 1], **TOL)


@pytest.mark.parametrize("name", list(CELLS))
def test_gradcheck_float64(name):
    torch.manual_seed(2)
    cell = make_cell(name, 3, 4).double()
    if name == "hyper":
        cell = HyperLSTMCell(3, 4, hyper_size=5, embedding_size=2).double()
    x = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    state = tuple(torch.randn(2, n, dtype=torch.float64, requires_grad=True) for n in cell.state_sizes)

    def run(x, *state):
        h, new_state = cell(x, tuple(state))
        return (h, *new_state)

    assert torch.autograd.gradcheck(run, (x, *state))
    params = [p for p in cell.parameters()]
    assert all(p.dtype == torch.float64 for p in params)

    def run_params(*ps):
        names = [n for n, _ in cell.named_parameters()]
        return torch.func.functional_call(cell, dict(zip(names, ps)), (x.detach(), tuple(s.detach() for s in state)))[0]

    assert torch.autograd.gradcheck(run_params, tuple(p.detach().requires_grad_() for p in params))


@pytest.mark.parametrize("name", ["rnn", "gru", "lstm"])
def test_one_step_through_the_fused_cell_equals_the_cell(name):
    torch.manual_seed(5)
    layer = RecurrentLayer(make_cell(name, 5, 8)).eval()
    x = torch.randn(1, 3, 5)
    state = tuple(torch.randn(3, n) for n in layer.cell.state_sizes)
    out, final = layer(x, state=state)
    h, expected = layer.cell.step(layer.cell.project_input(x[0]), state)
    torch.testing.assert_close(out[0], h, **TOL)
    for a, b in zip(final, expected):
        torch.testing.assert_close(a, b, **TOL)


@pytest.mark.parametrize("name", list(CELLS))
def test_gradcheck_unrolled_padded_layer(name):
    """The time loop's gradients against finite differences, over a padded batch: covers the
    masking and the recurrent weight's gradient formed once per sequence (``_RecurrentWeightGrad``)."""
    torch.manual_seed(4)
    cell = HyperLSTMCell(3, 4, hyper_size=5, embedding_size=2) if name == "hyper" else make_cell(name, 3, 4)
    layer = RecurrentLayer(cell, fused=False).double()
    x = torch.randn(6, 3, 3, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([6, 2, 4])
    names = [n for n, _ in layer.named_parameters()]

    def run(x, *ps):
        out, state = torch.func.functional_call(layer, dict(zip(names, ps)), (x, lengths))
        return (out, *state)

    params = tuple(p.detach().requires_grad_() for p in layer.parameters())
    assert torch.autograd.gradcheck(run, (x, *params))


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("name", list(CELLS))
def test_padded_batch_equals_single_sequences(name, fused):
    torch.manual_seed(3)
    layer = RecurrentLayer(make_cell(name, 5, 8), fused=fused).eval()
    lengths = torch.tensor([9, 4, 12])
    x = torch.randn(12, 3, 5)
    out, state = layer(x, lengths)
    for b, n in enumerate(lengths.tolist()):
        alone, alone_state = layer(x[:n, b : b + 1])
        torch.testing.assert_close(out[:n, b : b + 1], alone, **TOL)
        assert out[n:, b].abs().max() == 0 if n < 12 else True
        for s, a in zip(state, alone_state):
            torch.testing.assert_close(s[b : b + 1], a, **TOL)


@pytest.mark.parametrize("name", list(CELLS))
def test_state_carried_across_calls_equals_one_call(name):
    torch.manual_seed(4)
    layer = RecurrentLayer(make_cell(name, 5, 8)).eval()
    x = torch.randn(30, 2, 5)
    whole, whole_state = layer(x)
    first, state = layer(x[:17])
    second, state = layer(x[17:], state=state)
    torch.testing.assert_close(torch.cat([first, second]), whole, **TOL)
    for a, b in zip(state, whole_state):
        torch.testing.assert_close(a, b, **TOL)


def test_hyper_cell_starts_as_layer_norm_lstm():
    torch.manual_seed(5)
    hyper = HyperLSTMCell(5, 8)
    plain = LayerNormLSTMCell(5, 8)
    with torch.no_grad():
        plain.weight_ih.copy_(hyper.weight_ih[:32])
        plain.weight_hh.copy_(hyper.weight_hh[:32])
    x = torch.randn(3, 5)
    state = hyper.initial_state(3)
    state = (torch.randn(3, 8), torch.randn(3, 8), *state[2:])
    h, _ = hyper(x, state)
    expected, _ = plain(x, state[:2])
    torch.testing.assert_close(h, expected, **TOL)


@pytest.mark.parametrize("name", ["lstm", "layer_norm", "hyper"])
def test_recurrent_dropout_only_in_training(name):
    torch.manual_seed(6)
    cell = make_cell(name, 4, 32, dropout=0.5)
    x = torch.randn(16, 4)
    state = tuple(torch.randn(16, n) for n in cell.state_sizes)
    cell.train()
    a, b = cell(x, state)[0], cell(x, state)[0]
    assert not torch.allclose(a, b), "training steps should draw different dropout masks"
    cell.eval()
    torch.testing.assert_close(cell(x, state)[0], cell(x, state)[0])
    # Only the candidate is dropped: from c = 0, c' = sigmoid(i) * drop(g) is either 0 or
    # (inverted dropout, p = 0.5) exactly twice its eval-mode value, entry by entry.
    state = (state[0], torch.zeros(16, 32), *state[2:])
    c_eval = cell(x, state)[1][1]
    cell.train()
    c_train = cell(x, state)[1][1]
    dropped = c_train == 0
    assert 0.3 < dropped.float().mean() < 0.7
    torch.testing.assert_close(c_train[~dropped], 2 * c_eval[~dropped])


def test_factory_rejects_unknown_names_and_bad_dropout():
    with pytest.raises(ValueError, match="unknown cell 'lstmm'"):
        make_cell("lstmm", 3, 4)
    with pytest.raises(ValueError, match="LSTM family only"):
        make_cell("gru", 3, 4, dropout=0.1)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        make_cell("lstm", 3, 4, dropout=1.0)


def test_lstm_init_forget_bias_and_orthogonal_blocks():
    cell = make_cell("lstm", 10, 16)
    bias = cell.bias_ih + cell.bias_hh
    assert torch.all(bias[16:32] == 1.0) and torch.all(bias[:16] == 0) and torch.all(bias[32:] == 0)
    for block in cell.weight_hh.detach().chunk(4, 0):
        torch.testing.assert_close(block @ block.T, torch.eye(16), atol=1e-5, rtol=0)


def assert_same_run(got, want):
    """Two runs' (outputs, final state, parameter gradients) agree to float32 rounding."""
    (out_g, state_g, grads_g), (out_w, state_w, grads_w) = got, want
    torch.testing.assert_close(out_g, out_w, **TOL)
    for a, b in zip(state_g, state_w):
        torch.testing.assert_close(a, b, **TOL)
    for a, b in zip(grads_g, grads_w):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", list(CELLS))
def test_compiled_steps_equal_the_eager_ones(name):
    """``--compile``: the loop through torch.compile's step gives the eager loop's outputs and
    gradients (whose own gradients are checked against finite differences above). Without
    dropout: compiled code draws its masks from a random stream of its own."""
    torch.manual_seed(6)
    eager = RecurrentLayer(make_cell(name, 3, 8), fused=False).train()
    fast = RecurrentLayer(make_cell(name, 3, 8), fused=False).train()
    fast.load_state_dict(eager.state_dict())
    assert compile_steps(fast) == 1
    x, lengths = torch.randn(6, 4, 3), torch.tensor([6, 3, 5, 1])
    results = []
    for layer in (eager, fast):
        out, state = layer(x, lengths)
        (out.sum() + state[0].sum()).backward()
        results.append((out, state, [p.grad for p in layer.parameters()]))
    eager_run, compiled_run = results
    assert_same_run(compiled_run, eager_run)


@pytest.mark.skipif(not ONEDNN_LINEAR, reason="this torch build has no oneDNN linear")
@pytest.mark.parametrize("name, dropout", [("rnn", 0.0), ("lstm", 0.1), ("layer_norm", 0.0), ("layer_norm", 0.1)])
def test_prepacked_recurrent_weight_gives_addmms_outputs_and_gradients(name, dropout, monkeypatch):
    """A loop of 8 steps or more multiplies by its recurrent weight prepacked by oneDNN (both ways):
    the same outputs, states and gradients as addmm's, to float32 rounding, padded, with dropout."""
    torch.manual_seed(9)
    layer = RecurrentLayer(make_cell(name, 5, 32, dropout), fused=False).train()
    x, lengths = torch.randn(12, 4, 5), torch.tensor([12, 9, 3, 10])
    packs = []
    monkeypatch.setattr(PackedRecurrentWeight, "backward_product",
                        lambda self, grad, original=PackedRecurrentWeight.backward_product: packs.append(1)
                        or original(self, grad))
    results = []
    for packed in (True, False):
        monkeypatch.setattr(PackedRecurrentWeight, "fits", staticmethod(lambda *args, packed=packed: packed))
        layer.zero_grad()
        torch.manual_seed(10)  # the same dropout masks in both runs
        out, state = layer(x, lengths)
        (out.square().sum() + state[0].sum()).backward()
        results.append((out, state, [p.grad.clone() for p in layer.parameters()]))
    assert len(packs) == 11  # every step's backward but the first step's (its h is the zero state)
    assert_same_run(*results)


def test_compile_falls_back_to_eager_with_a_warning(monkeypatch):
    def no_compiler(fn, **options):
        def broken(*args):
            raise RuntimeError("no C++ compiler found")
        return broken

    monkeypatch.setattr(torch, "compile", no_compiler)
    torch.manual_seed(8)
    layer = RecurrentLayer(make_cell("layer_norm", 3, 8), fused=False)
    expected, _ = layer(torch.ones(4, 2, 3))
    compile_steps(layer)
    with pytest.warns(UserWarning, match="torch.compile failed.*no C\\+\\+ compiler"):
        out, _ = layer(torch.ones(4, 2, 3))
    torch.testing.assert_close(out, expected)
