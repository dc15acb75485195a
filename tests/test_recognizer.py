"""The recognizer: built from decoders and people's drawings, saved with the models it knows,
refused for others; the server and `sketchrnn guess` answer with it."""

import dataclasses
import shutil

import numpy as np
import pytest
import torch

from sketchrnn.catalog import model_files
from sketchrnn.cli import main
from sketchrnn.recognizer import (
    FEATURES,
    Recognizer,
    RecognizerConfig,
    StrokeClassifier,
    build,
    load_for,
    pad,
    sample_models,
)
from sketchrnn.strokes import read_ndjson

# A build in seconds, not minutes: the tests check the plumbing, bench/recognizer.py the accuracy.
TINY = RecognizerConfig(samples_per_model=12, steps=30, batch_size=16, hidden=16, conv_channels=8, layers=1,
                        sample_rows=24, minutes=2.0)


@pytest.fixture(scope="module")
def two_models(shared_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    for name in ("key", "palm_tree"):
        shutil.copy(shared_data / "models" / f"{name}.gen.json", folder / f"{name}.gen.json")
    return folder


@pytest.fixture(scope="module")
def people(shared_data):
    simplified = shared_data / "sketches" / "quickdraw" / "simplified"
    return {name: [r.strokes for r in read_ndjson(simplified / f"{google}.ndjson")[0][:13]]
            for name, google in (("key", "key"), ("palm_tree", "palm tree"))}


@pytest.fixture(scope="module")
def built(two_models, people, tmp_path_factory):
    recognizer = build(model_files([two_models]), people, TINY, progress=False)
    path = two_models / "recognizer.pt"
    recognizer.save(path)
    return path


def test_sampling_keeps_to_its_share_of_the_minutes_with_a_floor_per_model(two_models):
    """Many models in a short build: each draws fewer than asked, but never under min_samples."""
    cfg = dataclasses.replace(TINY, samples_per_model=5000, min_samples=30, minutes=0.01)  # 0.2 s to sample
    samples = sample_models(model_files([two_models]), cfg, progress=False)
    assert sorted(samples) == ["key", "palm_tree"]
    assert all(30 <= len(drawings) < 5000 for drawings in samples.values())


def test_a_guess_ranks_every_model_with_probabilities(built, two_models, people):
    recognizer = load_for(model_files([two_models]))  # recognizer.pt beside the models: found by itself
    assert recognizer is not None and recognizer.path == built
    ranked = recognizer.guess(people["key"][0])
    assert sorted(name for name, _ in ranked) == ["key", "palm_tree"]
    assert ranked[0][1] >= ranked[1][1] and abs(sum(p for _, p in ranked) - 1) < 1e-5
    polylines = [np.cumsum(people["key"][0][:, :2], 0) * 3.0]  # any units, as a page sends them
    assert [name for name, _ in recognizer.guess(polylines)] != []


def test_a_recognizer_for_other_models_is_refused_naming_the_difference(built, two_models, shared_data, tmp_path):
    other = tmp_path / "models"
    other.mkdir()
    shutil.copy(two_models / "key.gen.json", other / "key.gen.json")
    shutil.copy(shared_data / "models" / "bird.gen.json", other / "bird.gen.json")
    with pytest.raises(ValueError, match="built for other models.*bird, palm_tree"):
        load_for(model_files([other]), built)
    assert main(["serve", "--model", str(other), "--recognizer", str(built), "--workers", "1"]) == 2
    # The same name with other weights is another model too.
    (other / "bird.gen.json").unlink()
    shutil.copy(shared_data / "models" / "dog.gen.json", other / "palm_tree.gen.json")
    with pytest.raises(ValueError, match="palm_tree"):
        load_for(model_files([other]), built)


def test_a_recognizer_file_holds_only_tensors_and_plain_data(built):
    import torch

    saved = torch.load(built, weights_only=True)
    assert saved["names"] == ["key", "palm_tree"] and set(saved["sha256"]) == {"key", "palm_tree"}
    assert isinstance(Recognizer.load(built), Recognizer)


def test_guess_command_prints_the_top_guesses(built, two_models, capsys):
    assert main(["guess", "data/examples/bird.json", "--models", str(two_models)]) == 0
    out = capsys.readouterr().out.splitlines()
    shares = [float(line.split()[1].rstrip("%")) for line in out[:2]]
    assert {line.split()[0] for line in out[:2]} == {"key", "palm_tree"} and "recognizer" in out[-1]
    assert shares[0] >= shares[1] and abs(sum(shares) - 100) < 0.2


def test_a_drawing_scores_the_same_alone_and_padded_in_a_batch():
    """Training reads drawings padded to the longest of their batch, a guess reads one alone: the
    padding must change nothing, through both convolutions and the recurrent stack."""
    torch.manual_seed(0)
    classifier = StrokeClassifier(RecognizerConfig(), classes=5).eval()
    short, long = torch.randn(7, FEATURES), torch.randn(23, FEATURES)
    x, lengths = pad([short.numpy(), long.numpy()])
    with torch.no_grad():
        together = classifier(x, lengths)
        alone = classifier(short[:, None], torch.tensor([7]))
    torch.testing.assert_close(together[0], alone[0], atol=1e-5, rtol=1e-5)


def test_an_ensemble_averages_its_nets_and_a_one_net_file_still_loads(two_models, people, tmp_path):
    files = model_files([two_models])
    pair = build(files, people, dataclasses.replace(TINY, nets=2, steps=5), progress=False)
    assert len(pair.nets) == 2 and pair.steps == [5, 5]
    pair.save(tmp_path / "pair.pt")
    loaded = Recognizer.load(tmp_path / "pair.pt", files)
    drawing = people["key"][0]
    each = []
    for net in loaded.nets:
        each.append(Recognizer(loaded.names, loaded.hashes, loaded.cfg, [net]).probabilities([drawing]))
    torch.testing.assert_close(loaded.probabilities([drawing]), (each[0] + each[1]) / 2)
    torch.testing.assert_close(loaded.probabilities([drawing]), pair.probabilities([drawing]))
    # A file of the first format (one net, its "state") reads as a one-net recognizer.
    saved = torch.load(tmp_path / "pair.pt", weights_only=True)
    saved.update(format="sketchrnn-recognizer/1", state=saved.pop("states")[0])
    saved["config"].pop("nets")
    torch.save(saved, tmp_path / "old.pt")
    old = Recognizer.load(tmp_path / "old.pt", files)
    assert len(old.nets) == 1 and old.cfg.nets == 1
    torch.testing.assert_close(old.probabilities([drawing]), each[0])


def test_a_guess_reads_a_drawing_and_its_mirror_image_alike(built, people):
    """People draw a pig facing left or right: a guess averages both images, so a drawing and its
    mirror image get the same probabilities; without that, a net's leaning to one side shows."""
    recognizer = Recognizer.load(built)
    drawing = people["key"][0]
    image = drawing.copy()
    image[:, 0] = -image[:, 0]
    both = recognizer.probabilities([drawing, image])
    torch.testing.assert_close(both[0], both[1])
    recognizer.cfg.guess_mirrored = False
    one_side = recognizer.probabilities([drawing, image])
    assert not torch.allclose(one_side[0], one_side[1])
    torch.testing.assert_close((one_side[0] + one_side[1]) / 2, both[0])
