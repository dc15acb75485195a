"""The Sketch-RNN model: its loss against a direct per-point computation, masking, KL annealing,
Google's pretrained models, training, the sampler, and the model commands."""

import json
import math

import numpy as np
import pytest
import torch

from sketchrnn.checkpoints import ModelFileError, import_gen_json, load_model, save_model
from sketchrnn.cli import main
from sketchrnn.core.engine import TrainConfig, exponential_anneal
from sketchrnn.data import S0, stroke5, stroke5_batch, to_model_units
from sketchrnn.drawing_input import prepare_strokes, typical_extent
from sketchrnn.model import SketchRNN, SketchRNNConfig, per_drawing_nll, split_output, step_nll, training_loss
from sketchrnn.sampler import (
    ROW_MULTIPLE,
    Batch,
    LSTMStep,
    Request,
    Settings,
    complete,
    sample,
)
from sketchrnn.strokes import read_ndjson, resample, stroke3_to_polylines
from sketchrnn.train import SketchTrainConfig, evaluate_nll, train_sketch_model

SMALL = SketchRNNConfig(hidden=32, mixtures=3, dropout=0.0)


def direct_nll(out, target, mixtures):
    """One step's offset and pen NLL from the textbook formulas, in float64, no log tricks."""
    out = out.double().tolist()
    pen_logits, rest = out[:3], out[3:]
    pi, mx, my, lsx, lsy, rho = (rest[i * mixtures : (i + 1) * mixtures] for i in range(6))
    pi = np.exp(pi) / np.exp(pi).sum()
    dx, dy = target[0], target[1]
    density = 0.0
    for k in range(mixtures):
        sx, sy, r = math.exp(lsx[k]), math.exp(lsy[k]), math.tanh(rho[k])
        zx, zy = (dx - mx[k]) / sx, (dy - my[k]) / sy
        z = zx * zx + zy * zy - 2 * r * zx * zy
        density += pi[k] * math.exp(-z / (2 * (1 - r * r))) / (2 * math.pi * sx * sy * math.sqrt(1 - r * r))
    pen = np.exp(pen_logits) / np.exp(pen_logits).sum()
    return -math.log(density), -math.log(pen[int(np.argmax(target[2:]))])


def test_loss_matches_a_direct_per_point_computation():
    torch.manual_seed(0)
    out = torch.randn(4, 3, 3 + 6 * 5)
    targets = torch.zeros(4, 3, 5)
    targets[..., :2] = torch.randn(4, 3, 2)
    targets[..., 2:] = torch.nn.functional.one_hot(torch.randint(0, 3, (4, 3)), 3).float()
    offset, pen = step_nll(split_output(out, 5), targets)
    for t in range(4):
        for b in range(3):
            o, p = direct_nll(out[t, b], targets[t, b].tolist(), 5)
            assert offset[t, b].item() == pytest.approx(o, rel=1e-4)
            assert pen[t, b].item() == pytest.approx(p, rel=1e-4)


def test_masking_offsets_only_at_real_points_pen_over_n_plus_one_steps():
    a = np.array([[0.5, 0.1, 0], [0.2, -0.3, 1]], dtype=np.float32)
    b = np.array([[1.0, 1.0, 1]], dtype=np.float32)
    batch = stroke5_batch([a, b], [0, 0])
    offset, pen = torch.rand(3, 2) + 1, torch.rand(3, 2) + 1
    nll = per_drawing_nll(offset, pen, batch.targets, batch.lengths)
    expected_a = (offset[:2, 0].sum() + pen[:3, 0].sum()) / 3
    expected_b = (offset[:1, 1].sum() + pen[:2, 1].sum()) / 2
    torch.testing.assert_close(nll, torch.stack([expected_a, expected_b]))
    # Training: offsets at the 3 real points, pen at all 6 steps (padding included), / 6.
    expected = (offset[:2, 0].sum() + offset[0, 1] + pen.sum()) / 6
    torch.testing.assert_close(training_loss(offset, pen, batch.targets), expected)


def test_padding_does_not_change_a_drawings_evaluation():
    torch.manual_seed(1)
    model = SketchRNN(SMALL).eval()
    short = np.array([[0.5, 0.1, 0], [0.2, -0.3, 1]], dtype=np.float32)
    long = np.tile(np.array([[0.1, 0.2, 0]], dtype=np.float32), (9, 1))
    alone = stroke5_batch([short], [0])
    padded = stroke5_batch([short, long], [0, 0])
    nll_alone = per_drawing_nll(*model(alone.inputs, alone.targets, alone.lengths)[:2], alone.targets, alone.lengths)
    nll_padded = per_drawing_nll(*model(padded.inputs, padded.targets, padded.lengths)[:2], padded.targets,
                                 padded.lengths)
    torch.testing.assert_close(nll_alone[0], nll_padded[0])


def test_kl_weight_anneals_from_start_toward_max():
    w = [exponential_anneal(s, 0.01, 0.5, 0.99995) for s in (0, 1000, 100_000, 10**7)]
    assert w[0] == pytest.approx(0.01) and w[0] < w[1] < w[2] < 0.5 and w[3] == pytest.approx(0.5)


def test_vae_kl_is_zero_for_a_standard_normal_posterior():
    torch.manual_seed(2)
    model = SketchRNN(SketchRNNConfig(mode="vae", hidden=16, mixtures=2, encoder_hidden=8, z_size=4))
    batch = stroke5_batch([np.array([[1, 2, 0], [3, 4, 1]], dtype=np.float32)], [0])
    with torch.no_grad():
        model.to_latent.weight.zero_()
        model.to_latent.bias.zero_()
    _, _, kl = model(batch.inputs, batch.targets, batch.lengths)
    torch.testing.assert_close(kl, torch.zeros(1))


def test_imported_monkey_model_scores_the_reference_nll(shared_data):
    """-0.693 +- 0.002 on drawings 900-999: an independent numpy computation of the metric."""
    loaded = load_model(shared_data / "models" / "monkey.gen.json")
    assert loaded.model.config.hidden == 512 and loaded.classes == ["monkey"]
    from sketchrnn.data import SketchSet, load_sketches

    every = load_sketches([shared_data / "sketches" / "quickdraw" / "monkey-1000.ndjson"]).splits["all"]
    chosen = range(900, 1000)
    subset = SketchSet([every.drawings[i] for i in chosen], every.labels[900:1000], every.key_ids[900:1000])
    result = evaluate_nll(loaded.model, loaded.scale_factor, subset)
    assert result["nll"] == pytest.approx(-0.693, abs=0.002) and result["drawings"] == 100


def test_gen_json_mode_spellings_and_bad_files(shared_data, tmp_path):
    info, dims, weights = json.loads((shared_data / "models" / "sheep.gen.json").read_text())
    for mode in (2, "gen"):
        info["mode"] = mode
        (tmp_path / "m.gen.json").write_text(json.dumps([info, dims, weights]))
        assert import_gen_json(tmp_path / "m.gen.json").model.config.hidden == 512
    info["mode"] = 1
    (tmp_path / "vae.gen.json").write_text(json.dumps([info, dims, weights]))
    with pytest.raises(ModelFileError, match="vae.gen.json: mode 1 is not a decoder-only"):
        import_gen_json(tmp_path / "vae.gen.json")
    (tmp_path / "junk.gen.json").write_text("{")
    with pytest.raises(ModelFileError, match="junk.gen.json: not a sketch-rnn-js model"):
        import_gen_json(tmp_path / "junk.gen.json")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelFileError, match="junk.pt"):
        load_model(tmp_path / "junk.pt")


def test_import_round_trip_through_our_checkpoint(shared_data, tmp_path):
    gen = import_gen_json(shared_data / "models" / "bird.gen.json")
    save_model(gen, tmp_path / "bird.pt")
    again = load_model(tmp_path / "bird.pt")
    assert again.scale_factor == gen.scale_factor and again.classes == ["bird"]
    for a, b in zip(gen.model.state_dict().values(), again.model.state_dict().values()):
        assert torch.equal(a, b)


def test_rows_are_padded_only_while_a_seeded_or_greedy_request_steps_through_torch(shared_data):
    loaded = load_model(shared_data / "models" / "sheep.gen.json")
    nothing = np.zeros((0, 3), np.float32)
    numpy_steps, torch_steps = Batch(loaded.model), Batch(loaded.model)
    torch_steps.numpy_steps = False  # as for a layer-norm decoder or a GPU
    assert numpy_steps.numpy_steps
    for batch in (numpy_steps, torch_steps):
        batch.add([Request(nothing, loaded.scale_factor, 1, Settings(max_points=500))])
        batch.step()
        assert batch.state[0].shape[0] == 1  # one stream: one row, a matrix-vector product
        seeded = Request(nothing, loaded.scale_factor, 2, Settings(seed=1, max_points=500))
        batch.add([seeded])
        batch.step()
        assert batch.state[0].shape[0] == (3 if batch is numpy_steps else ROW_MULTIPLE)
        batch.remove([seeded])
        batch.add([Request(nothing, loaded.scale_factor, 2, Settings(greedy=True, max_points=500))])
        assert batch.state[0].shape[0] == (3 if batch is numpy_steps else ROW_MULTIPLE)
        batch.remove(batch.requests[1:])
        batch.step()
        assert batch.state[0].shape[0] == 1 and len(batch) == 1


@pytest.mark.parametrize("mode", ["decoder", "vae"])
def test_numpy_lstm_step_is_the_decoders_step(mode):
    """The sampler's numpy step (row by row below 8 rows and for exact rows, one product for the
    rest from there on) computes what the torch decoder computes, output and state, z included."""
    torch.manual_seed(0)
    model = SketchRNN(SketchRNNConfig(hidden=48, mixtures=3, mode=mode, z_size=8, encoder_hidden=16)).eval()
    step = LSTMStep([model])
    for rows in (1, 3, ROW_MULTIPLE, 2 * ROW_MULTIPLE + 1):
        inputs = torch.randn(rows, 5)
        z = torch.randn(rows, 8) if mode == "vae" else None
        state = tuple(torch.randn(rows, 48) for _ in range(2))
        with torch.no_grad():
            expected, expected_state = model.decode(inputs[None], state, z=z)
        exact = np.arange(rows) % 3 == 1  # rows that get a product of their own whatever the others
        xh, c = LSTMStep.lay_out(inputs, state, z)
        out = step(xh, c, exact, np.zeros(rows, np.int64))
        np.testing.assert_allclose(out, expected[0].numpy(), atol=2e-5, rtol=1e-5)
        for got, want in zip((xh[:, -48:], c), expected_state):  # the new state, written in place
            np.testing.assert_allclose(got, want.numpy(), atol=2e-5, rtol=1e-5)
        for row in np.flatnonzero(exact):  # bit for bit what the row gives alone
            alone_xh, alone_c = LSTMStep.lay_out(inputs[row : row + 1], tuple(s[row : row + 1] for s in state),
                                                 None if z is None else z[row : row + 1])
            alone = step(alone_xh, alone_c, np.ones(1, bool), np.zeros(1, np.int64))
            assert np.array_equal(out[row], alone[0])
            assert np.array_equal(xh[row], alone_xh[0]) and np.array_equal(c[row], alone_c[0])
    assert LSTMStep.fits(model)
    assert not LSTMStep.fits(SketchRNN(SketchRNNConfig(hidden=8, mixtures=2, cell="layer_norm")))
    assert not LSTMStep.fits(SketchRNN(SketchRNNConfig(hidden=8, mixtures=2, dropout=0.1)).train())


@pytest.mark.parametrize("steps", ["numpy", "torch"])
def test_a_seeded_request_repeats_exactly_whatever_shares_its_batch(steps, shared_data, monkeypatch):
    if steps == "torch":  # as for a layer-norm decoder or a GPU: rows padded to ROW_MULTIPLE
        monkeypatch.setattr(LSTMStep, "fits", staticmethod(lambda model: False))
    loaded = load_model(shared_data / "models" / "sheep.gen.json")
    scale = loaded.scale_factor
    drawing = read_ndjson(shared_data / "sketches" / "quickdraw" / "simplified" / "sheep.ndjson")[0][0].strokes

    def request(seed, n=3, greedy=False):
        return Request(drawing[:15], scale, n, Settings(seed=seed, greedy=greedy, max_points=80))

    alone = complete(loaded.model, request(7))
    assert all(np.array_equal(x, y) for x, y in zip(alone, complete(loaded.model, request(7))))
    assert not np.array_equal(alone[0], alone[1])  # the alternatives differ
    # The same request joining a batch already stepping others, seeded and not (9 unseeded rows:
    # numpy steps those in one matrix product), beside another newcomer.
    batch = Batch(loaded.model)
    batch.add([request(1, n=2), Request(drawing[:40], scale, 1, Settings(seed=2)),
               Request(drawing[:20], scale, 9, Settings(max_points=400))])
    for _ in range(5):
        batch.step()
    mine = request(7)
    batch.add([Request(drawing[:3], scale, 4, Settings(seed=3)), mine])
    drawn = [[] for _ in range(3)]
    while mine in batch.requests:
        points = batch.step()
        for row in np.flatnonzero(points.drawn):
            owner, k = points.rows[row]
            if owner is mine:
                drawn[k].append([*points.offset[row], float(points.lifted[row])])
        batch.drop_finished()
    assert all(np.array_equal(x, np.array(y, dtype=np.float32).reshape(-1, 3)) for x, y in zip(alone, drawn))
    greedy = complete(loaded.model, request(None, n=2, greedy=True))
    assert np.array_equal(greedy[0], greedy[1]) and len(greedy[0]) > 0


def test_models_of_one_shape_step_in_one_batch_each_row_with_its_own_weights(shared_data):
    """Rows of three decoders in one batch, interleaved as requests arrive: each seeded request
    draws exactly what its own model draws alone; models of another shape are refused."""
    models = [load_model(shared_data / "models" / f"{name}.gen.json") for name in ("sheep", "bird", "dog")]
    drawing = read_ndjson(shared_data / "sketches" / "quickdraw" / "simplified" / "cat.ndjson")[0][0].strokes

    def request(loaded, seed, n=2):
        return Request(drawing[:12], loaded.scale_factor, n, Settings(seed=seed, max_points=60))

    alone = [complete(loaded.model, request(loaded, seed)) for seed, loaded in enumerate(models)]
    batch = Batch([loaded.model for loaded in models])
    mine, drawn = {}, {index: [[] for _ in range(2)] for index in range(3)}

    def step():
        points = batch.step()
        for row in np.flatnonzero(points.drawn):
            owner, k = points.rows[row]
            for index, request in mine.items():
                if owner is request:
                    drawn[index][k].append([*points.offset[row], float(points.lifted[row])])
        batch.drop_finished()

    for index in (1, 0, 2):  # arrivals out of the models' order, beside unseeded neighbours
        batch.add([Request(drawing[:20], models[index].scale_factor, 3)], model=index)
        mine[index] = request(models[index], index)
        batch.add([mine[index]], model=index)
        step()
    while any(r in batch.requests for r in mine.values()):
        step()
    for index, expected in enumerate(alone):
        assert all(np.array_equal(x, np.array(y, np.float32).reshape(-1, 3)) for x, y in zip(expected, drawn[index]))
    assert not np.array_equal(alone[0][0], alone[1][0])  # the models draw differently
    with pytest.raises(ValueError, match="one shape"):
        Batch([models[0].model, SketchRNN(SketchRNNConfig(hidden=8, mixtures=2))])


def test_priming_equals_one_teacher_forced_pass_over_the_prefix(shared_data):
    loaded = load_model(shared_data / "models" / "sheep.gen.json")
    scale = loaded.scale_factor
    drawing = read_ndjson(shared_data / "sketches" / "quickdraw" / "simplified" / "cat.ndjson")[0][0].strokes[:30]
    alone, crowded = Batch(loaded.model), Batch(loaded.model)
    other = read_ndjson(shared_data / "sketches" / "quickdraw" / "simplified" / "cat.ndjson")[0][1].strokes[:30]
    alone.add([Request(drawing, scale)])
    crowded.add([Request(drawing[:7], scale, 2), Request(other, scale), Request(drawing, scale)])
    for x, y in zip(alone.state, crowded.state):
        assert torch.equal(x[0], y[3])  # read beside a prefix of its length and a shorter one: the same state
    units = torch.from_numpy(stroke5(to_model_units(drawing, scale)))
    out, state = loaded.model.decode(torch.cat([torch.tensor([S0]), units[:-1]])[:, None])
    for x, y in zip(alone.state, state):
        torch.testing.assert_close(x[:1], y, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(alone.inputs[0], units[-1])  # the last point is the next step's input


def test_temperature_follows_sketch_rnn_js(shared_data):
    """sigma times sqrt(tau); pen and mixture logits divided by 0.5 + 0.5 tau unless given."""
    assert Settings(temperature=0.25).discrete_temperature == 0.625
    assert Settings(temperature=0.25, pen_temperature=0.1).discrete_temperature == 0.1
    with pytest.raises(ValueError, match="temperature must be > 0"):
        Settings(temperature=0)
    loaded = load_model(shared_data / "models" / "sheep.gen.json")
    lifts = []
    for pen_temperature in (0.05, 1.0):
        drawings = sample(loaded.model, loaded.scale_factor, 8, Settings(0.25, pen_temperature, seed=0))
        lifts.append(sum(d[:, 2].sum() for d in drawings) / sum(len(d) for d in drawings))
    assert lifts[0] < lifts[1]  # a colder pen lifts less often


def test_prepare_strokes_simplifies_dense_mouse_input_like_the_training_data(shared_data):
    simplified = read_ndjson(shared_data / "sketches" / "quickdraw" / "simplified" / "cat.ndjson")[0][:5]
    for record in simplified:
        polylines = [p * 2.0 + 100 for p in stroke3_to_polylines(record.strokes)]  # drawn at 2x
        dense = [resample(p, 2.0) for p in polylines]  # a mouse point every 2 px
        prefix, scale = prepare_strokes(dense, max_len=250)
        assert len(prefix) < 0.5 * sum(len(p) for p in dense)
        assert abs(len(prefix) - len(record.strokes)) <= 0.25 * len(record.strokes)
        assert scale == pytest.approx(2.0 * record.strokes[1:, :2].std(), rel=0.25)
    prefix, _ = prepare_strokes(dense * 40, max_len=100)  # far more than the model can take
    assert len(prefix) <= 100
    prefix, scale = prepare_strokes([np.array([[5.0, 5.0], [5.0, 5.0]])], 250, fallback_scale=3.0)
    assert scale == 3.0 and len(prefix) == 2  # a dot: the model's own scale
    assert prepare_strokes(dense, 250, scale=7.0)[1] == 7.0  # an explicit scale wins


def test_a_few_long_strokes_are_completed_at_their_own_size():
    """The browser test's cloud, 8 straight segments: read at the std of its offsets alone, the
    sheep model drew endings three times its size; with the drawing's extent as a second reading
    they stay near it."""
    loaded = load_model()
    corners = np.array([[0, 0], [60, -30], [140, -35], [220, -5], [230, 60], [160, 100], [60, 95], [0, 40], [0, 0]])
    cloud = [resample(corners * 1.0 + 300, 2.0)]
    prefix, scale = prepare_strokes(cloud, loaded.max_len, extent=typical_extent(loaded.model))
    std_only = prepare_strokes(cloud, loaded.max_len)[1]
    assert scale < 0.7 * std_only
    endings = complete(loaded.model, Request(prefix, scale, 32, Settings(seed=0)))  # 8: the median swings 250-350
    sizes = [np.ptp(np.cumsum(e[:, :2], 0), 0).max() for e in endings if len(e) > 1]
    assert np.median(sizes) < 1.5 * np.ptp(corners, 0).max(), sizes


def test_a_trained_vae_completes_from_the_command_line(sketches_dir, tmp_path, capsys):
    data = str(sketches_dir / "quickdraw" / "simplified" / "cat.ndjson")
    config = SketchRNNConfig(mode="vae", hidden=32, mixtures=3, encoder_hidden=16, z_size=8)
    train_sketch_model([data], tmp_path / "run", SketchTrainConfig(config, TrainConfig(steps=20, eval_every=20),
                                                                   batch_size=16), progress=False)
    model = str(tmp_path / "run" / "best.pt")
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps([[[10, 10], [60, 12], [62, 50]], [[30, 30], [35, 40]]]))
    assert main(["complete", "--model", model, "--input", str(partial), "--n", "2", "--seed", "1",
                 "--max-points", "40", "--out", str(tmp_path / "c.svg"), "--json", str(tmp_path / "c.json")]) == 0
    out = json.loads((tmp_path / "c.json").read_text())
    assert len(out["continuations"]) == 2 and any(len(c) for c in out["continuations"])
    assert main(["sample", "--model", model, "--n", "2", "--seed", "1", "--out", str(tmp_path / "s.svg")]) == 0


def test_training_lowers_the_loss_and_resumes(sketches_dir, tmp_path):
    data = [str(sketches_dir / "quickdraw" / "simplified" / f"{c}.ndjson") for c in ("cat", "sheep", "bird")]
    cfg = SketchTrainConfig(SMALL, TrainConfig(steps=50, eval_every=25, lr=3e-3), batch_size=16, max_len=100)
    summary = train_sketch_model(data, tmp_path, cfg, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train_loss = [r["loss"] for r in rows if r["split"] == "train"]
    assert train_loss[-1] < train_loss[0] - 0.2, train_loss  # measured: 3.12 -> 2.70
    assert (tmp_path / "samples-000050.svg").exists() and (tmp_path / "learning_curve.svg").exists()
    loaded = load_model(tmp_path / "best.pt")
    assert loaded.classes == ["cat", "sheep", "bird"] and loaded.model.config.hidden == 32
    cfg.engine.steps = 60
    resumed = train_sketch_model(data, tmp_path, cfg,
                                 resume=True, progress=False)
    assert resumed["step"] == 60 and summary["step"] == 50


def test_encoder_without_packing_equals_packed_and_nn_lstm():
    """The VAE encoder reads each direction over the padded batch at length - 1: the same latent
    as the packed pass, and as torch.nn.LSTM's own bidirectional packed LSTM with the same weights."""
    torch.manual_seed(0)
    model = SketchRNN(SketchRNNConfig(mode="vae", hidden=8, mixtures=2, encoder_hidden=16, z_size=4))
    x, lengths = torch.randn(30, 5, 5), torch.tensor([30, 1, 17, 29, 8])
    _, [(forward, backward)] = model.encoder(x, lengths)
    ends = model.encoder.layers[0].last_outputs(x, lengths)
    torch.testing.assert_close(ends, torch.cat([forward[0], backward[0]], -1), atol=1e-6, rtol=1e-6)
    reference = torch.nn.LSTM(5, 16, bidirectional=True)
    layer = model.encoder.layers[0]
    with torch.no_grad():
        for suffix, direction in (("", layer.forward_layer), ("_reverse", layer.backward_layer)):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(reference, f"{name}_l0{suffix}").copy_(getattr(direction.cell, name))
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
        _, (h, _) = reference(packed)
    torch.testing.assert_close(ends, torch.cat([h[0], h[1]], -1), atol=1e-6, rtol=1e-6)


def test_vae_trains_and_reports_kl(sketches_dir, tmp_path):
    data = [str(sketches_dir / "quickdraw" / "simplified" / "cat.ndjson")]
    config = SketchRNNConfig(mode="vae", hidden=16, mixtures=2, encoder_hidden=8, z_size=4, dropout=0.1)
    cfg = SketchTrainConfig(config, TrainConfig(steps=4, eval_every=4), batch_size=8)
    summary = train_sketch_model(data, tmp_path, cfg, progress=False)
    valid = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()][-1]
    assert "kl" in valid and math.isfinite(summary["valid_loss"])


def test_model_commands(shared_data, tmp_path, capsys):
    monkey = str(shared_data / "models" / "monkey.gen.json")
    drawings = str(shared_data / "sketches" / "quickdraw" / "monkey-1000.ndjson")
    assert main(["eval", "--model", monkey, "--data", drawings, "--range", "990:1000", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["drawings"] == 10 and result["points"] > 0 and result["nll"] < 0
    assert main(["import", monkey, "--out", str(tmp_path / "monkey.pt")]) == 0
    assert main(["sample", "--model", str(tmp_path / "monkey.pt"), "--n", "4", "--seed", "1",
                 "--out", str(tmp_path / "s.svg")]) == 0
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps([[[10, 10], [60, 12], [62, 50]], [[30, 30], [35, 40]]]))
    assert main(["complete", "--model", monkey, "--input", str(partial), "--n", "3", "--seed", "1",
                 "--out", str(tmp_path / "c.svg"), "--json", str(tmp_path / "c.json")]) == 0
    out = json.loads((tmp_path / "c.json").read_text())
    assert len(out["continuations"]) == 3 and len(out["input"]) == 5
    assert (tmp_path / "c.svg").read_text().count("#d62728") >= 3
    assert main(["eval", "--model", str(tmp_path / "nothing.pt"), "--data", drawings]) == 2
    assert "no such model file" in capsys.readouterr().err


def test_vae_reconstruct_and_interpolate_commands(sketches_dir, tmp_path, capsys):
    data = str(sketches_dir / "quickdraw" / "simplified" / "cat.ndjson")
    config = SketchRNNConfig(mode="vae", hidden=16, mixtures=2, encoder_hidden=8, z_size=4)
    cfg = SketchTrainConfig(config, TrainConfig(steps=2, eval_every=2), batch_size=8)
    train_sketch_model([data], tmp_path / "run", cfg, progress=False)
    model = str(tmp_path / "run" / "best.pt")
    assert main(["reconstruct", "--model", model, "--data", data, "--split", "all", "--n", "3", "--seed", "0",
                 "--max-points", "30", "--out", str(tmp_path / "r.svg")]) == 0
    assert (tmp_path / "r.svg").read_text().count(">reconstruction<") == 3
    assert main(["interpolate", "--model", model, "--data", data, "--split", "all", "--steps", "5", "--seed", "0",
                 "--max-points", "30", "--out", str(tmp_path / "i.svg")]) == 0
    assert ">t=0.50<" in (tmp_path / "i.svg").read_text()
    # A decoder-only model cannot encode: a clear refusal, not a traceback.
    monkey = str(sketches_dir.parent / "models" / "monkey.gen.json")
    assert main(["reconstruct", "--model", monkey, "--data", data, "--split", "all"]) == 2
    assert "needs a VAE model" in capsys.readouterr().err


def test_slerp_keeps_the_ends_and_the_norm_between_orthogonal_latents():
    from sketchrnn.latent import slerp

    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    torch.testing.assert_close(slerp(a, b, 0.0), a)
    torch.testing.assert_close(slerp(a, b, 1.0), b)
    assert slerp(a, b, 0.5).norm().item() == pytest.approx(1.0)
