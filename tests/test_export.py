"""Models that travel: a model trained here, exported to sketch-rnn-js's format, reads back to
the same model up to the format's int16 quantisation, and Magenta's own @magenta/sketch (Node.js,
tests/js) computes the same distributions from it and samples drawings like ours."""

import json
import subprocess

import numpy as np
import pytest
import torch
from test_reference import COUNT, agree

from sketchrnn.checkpoints import LoadedModel, ModelFileError, export_gen_json, import_gen_json, load_model
from sketchrnn.cli import main
from sketchrnn.data import S0, SketchSet, load_sketches, stroke5, to_model_units
from sketchrnn.model import SketchRNN, SketchRNNConfig
from sketchrnn.sampler import Settings, sample
from sketchrnn.train import evaluate_nll

STEP = 10 / 32767  # the format's quantisation step


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "sheep.gen.json"
    assert main(["export", "--out", str(path)]) == 0
    return load_model(), path


def test_export_round_trips_within_the_quantisation(exported, shared_data):
    original, path = exported
    back = import_gen_json(path)
    assert (back.name, back.max_len, back.scale_factor) == ("sheep", 250, pytest.approx(original.scale_factor))
    ours, theirs = original.model.decoder.cell, back.model.decoder.cell
    pairs = [(ours.weight_ih, theirs.weight_ih), (ours.weight_hh, theirs.weight_hh),
             (ours.bias_ih + ours.bias_hh, theirs.bias_ih + theirs.bias_hh),
             (original.model.output.weight, back.model.output.weight)]
    assert all(float((a - b).detach().abs().max()) <= STEP / 2 + 1e-6 for a, b in pairs)
    test = load_sketches([shared_data / "sketches" / "aaron_sheep.npz"]).splits["test"]
    some = SketchSet(test.drawings[:60], test.labels[:60], test.key_ids[:60])
    before = evaluate_nll(original.model, original.scale_factor, some)["nll"]
    after = evaluate_nll(back.model, back.scale_factor, some)["nll"]
    assert abs(after - before) < 0.1, (before, after)  # measured on the whole split: 0.129 -> 0.182


def test_export_refuses_what_the_format_cannot_hold(tmp_path):
    for config, words in ((SketchRNNConfig(mode="vae", hidden=8, encoder_hidden=4, z_size=2), "decoder-only"),
                          (SketchRNNConfig(cell="layer_norm", hidden=8), "plain LSTM"),
                          (SketchRNNConfig(hidden=8, mixtures=5), "reads 20")):
        with pytest.raises(ModelFileError, match=words):
            export_gen_json(LoadedModel(SketchRNN(config), 1.0, ["x"], "x"), tmp_path / "x.gen.json")
    assert not list(tmp_path.iterdir())


def our_trace(model, units: np.ndarray) -> dict:
    """Our distribution after S0 and after each point, in @magenta/sketch's terms (temperature 1)."""
    inputs = torch.cat([torch.tensor([S0]), torch.from_numpy(stroke5(units))])[:, None]
    with torch.no_grad():
        out, _ = model.eval().decode(inputs)
        p = model.params(out[:, 0])
    return {"pi": p.log_pi.exp(), "muX": p.mu_x, "muY": p.mu_y, "sigmaX": p.log_sigma_x.exp(),
            "sigmaY": p.log_sigma_y.exp(), "corr": p.rho, "pen": torch.softmax(p.pen_logits, -1)}


def test_magenta_sketch_computes_our_distributions_from_the_export(magenta_sketch, exported, shared_data, tmp_path):
    original, path = exported
    drawing = load_sketches([shared_data / "sketches" / "aaron_sheep.npz"]).splits["test"].drawings[0][:60]
    units = to_model_units(drawing, original.scale_factor)
    # @magenta/sketch divides what it is fed by scale_factor / 2 (its default pixel factor).
    fed = np.concatenate([units[:, :2] * original.scale_factor / 2, stroke5(units)[:, 2:]], 1)
    (tmp_path / "strokes.json").write_text(json.dumps(fed.tolist()))
    out = subprocess.run(["node", str(magenta_sketch / "pdf_trace.js"), str(path), str(tmp_path / "strokes.json")],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    theirs = json.loads(next(line for line in reversed(out.splitlines()) if line.startswith("[")))
    same_file = our_trace(import_gen_json(path).model, units)
    before_export = our_trace(original.model, units)
    for key in same_file:
        js = torch.tensor([step[key] for step in theirs])
        assert torch.allclose(js, same_file[key], atol=2e-4), (key, float((js - same_file[key]).abs().max()))
        assert torch.allclose(js, before_export[key], atol=0.05), (key, float((js - before_export[key]).abs().max()))


def test_magenta_sketch_samples_drawings_like_ours(reference, exported):
    original, path = exported
    theirs = reference(path, 0.25, 250)
    drawings = sample(original.model, original.scale_factor, COUNT, Settings(temperature=0.25, seed=0))
    ours_points = np.array([len(d) for d in drawings], dtype=float)
    ours_strokes = np.array([d[:, 2].sum() for d in drawings], dtype=float)
    summary = (f"points per drawing: ours {ours_points.mean():.1f}, @magenta/sketch "
               f"{np.mean(theirs['points']):.1f}; strokes: ours {ours_strokes.mean():.2f}, "
               f"@magenta/sketch {np.mean(theirs['lifts']):.2f}")
    assert agree(ours_points, np.array(theirs["points"], dtype=float)), summary
    assert agree(ours_strokes, np.array(theirs["lifts"], dtype=float)), summary
