"""Drawings prepared for training, on the real files: classes and splits, the scale factor,
augmentation, stroke-5 batches, bucketing, length caps, rendering, and the data command."""

import json

import numpy as np
import pytest
import torch

from sketchrnn.cli import main
from sketchrnn.data import (
    Batcher,
    cap_length,
    drop_points,
    evaluation_batches,
    load_sketches,
    padding_ratio,
    scale_factor,
    stroke5_batch,
)
from sketchrnn.render import MODEL_COLOR, USER_COLOR, render_grid
from sketchrnn.strokes import StrokeFormatError, read_ndjson, stroke3_to_polylines


@pytest.fixture
def sheep(sketches_dir):
    return load_sketches([sketches_dir / "aaron_sheep.npz"])


def test_several_files_each_a_class_with_seeded_splits(sketches_dir):
    files = [sketches_dir / "quickdraw" / "simplified" / f"{c}.ndjson" for c in ("cat", "The Eiffel Tower")]
    data = load_sketches(files, seed=3)
    assert data.classes == ["cat", "The Eiffel Tower"]
    sizes = {s: len(v) for s, v in data.splits.items()}
    assert sizes == {"train": 46, "valid": 2, "test": 2, "all": 50}
    in_file_order = [r.key_id for f in files for r in read_ndjson(f)[0]]
    assert data.splits["all"].key_ids == in_file_order
    assert set(data.splits["train"].labels.tolist()) == {0, 1}
    again = load_sketches(files, seed=3)
    assert again.splits["test"].key_ids == data.splits["test"].key_ids  # deterministic
    other = load_sketches(files, seed=4)
    assert other.splits["train"].key_ids != data.splits["train"].key_ids


def test_npz_keeps_its_own_splits_and_checks_every_drawing(sheep, sketches_dir, tmp_path):
    assert {s: len(v) for s, v in sheep.splits.items()} == {"train": 7400, "valid": 300, "test": 300, "all": 8000}
    bad = np.load(sketches_dir / "aaron_sheep.npz", encoding="latin1", allow_pickle=True)
    splits = {k: bad[k] for k in ("train", "valid", "test")}
    splits["valid"][5] = np.zeros((0, 3), dtype=np.int16)
    np.savez(tmp_path / "broken.npz", **splits)
    with pytest.raises(StrokeFormatError, match=r"broken.npz: valid\[5\]: empty drawing"):
        load_sketches([tmp_path / "broken.npz"])
    skipping = load_sketches([tmp_path / "broken.npz"], skip_bad=True)
    assert skipping.skipped == 1 and len(skipping.splits["valid"]) == 299


def test_scale_factor_is_the_pooled_std_of_clamped_train_offsets(sheep):
    offsets = np.concatenate([d[:, :2] for d in sheep.splits["train"].drawings])
    assert scale_factor(sheep.splits["train"].drawings) == pytest.approx(float(offsets.clip(-1000, 1000).std()))
    extreme = [np.array([[0, 0, 0], [5000, -5000, 1]], dtype=np.float32)]
    assert scale_factor(extreme) == pytest.approx(np.std([0, 0, 1000, -1000]))


def test_stroke5_batch_layout():
    a = np.array([[1, 2, 0], [3, 4, 1]], dtype=np.float32)
    b = np.array([[5, 6, 1]], dtype=np.float32)
    batch = stroke5_batch([a, b], [0, 1])
    assert batch.inputs.shape == batch.targets.shape == (3, 2, 5)
    assert batch.lengths.tolist() == [3, 2]
    assert batch.inputs[0, 0].tolist() == [0, 0, 1, 0, 0]  # S0
    assert batch.targets[:, 0].tolist() == [[1, 2, 1, 0, 0], [3, 4, 0, 1, 0], [0, 0, 0, 0, 1]]
    assert batch.targets[:, 1].tolist() == [[5, 6, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1]]
    torch.testing.assert_close(batch.inputs[1:], batch.targets[:-1])  # inputs are targets shifted


def test_batches_pad_to_the_longest_in_the_batch_and_bucketing_cuts_padding(sheep):
    train = sheep.splits["train"]
    scale = scale_factor(train.drawings)
    random_batches = Batcher(train, scale, bucket=False, augment=False)
    bucketed = Batcher(train, scale, bucket=True, augment=False)
    epoch = range(bucketed.batches_per_epoch)
    batch = random_batches.batch(0)
    assert batch.targets.shape[0] == int(batch.lengths.max())
    random_waste = padding_ratio(random_batches.batch(s) for s in epoch)
    bucket_waste = padding_ratio(bucketed.batch(s) for s in epoch)
    assert bucket_waste < random_waste / 5, (bucket_waste, random_waste)
    seen = np.concatenate([bucketed._batches[i] for i in epoch])
    assert sorted(seen.tolist()) == list(range(len(train)))  # every drawing once per epoch


def test_batches_are_a_function_of_the_step(sheep):
    train = sheep.splits["train"]
    a, b = Batcher(train, 10.0, seed=1), Batcher(train, 10.0, seed=1)
    b.batch(500)  # visiting other epochs first must not change step 7's batch
    torch.testing.assert_close(a.batch(7).inputs, b.batch(7).inputs)
    assert not torch.equal(a.batch(7).inputs, a.batch(8).inputs)


def test_augmentation_scales_each_axis_and_drops_points(sheep):
    train = sheep.splits["train"]
    plain = Batcher(train, 1.0, augment=False, bucket=False, seed=0)
    noisy = Batcher(train, 1.0, random_scale=0.15, drop_prob=0.0, bucket=False, seed=0)
    p, n = plain.batch(3), noisy.batch(3)
    ratio = n.targets[0, :, :2] / p.targets[0, :, :2]
    valid = torch.isfinite(ratio) & (p.targets[0, :, :2].abs() > 0)
    assert (ratio[valid] > 0.85 - 1e-5).all() and (ratio[valid] < 1.15 + 1e-5).all()
    assert not torch.allclose(ratio[:, 0][valid[:, 0]].mean(), torch.tensor(1.0), atol=1e-6)
    dropping = Batcher(train, 1.0, random_scale=0.0, drop_prob=0.1, bucket=False, seed=0)
    assert dropping.batch(3).lengths.sum() < p.lengths.sum()


def test_drop_points_keeps_stroke_ends_in_place(sheep):
    rng = np.random.default_rng(0)
    for drawing in sheep.splits["train"].drawings[:200]:
        dropped = drop_points(drawing.astype(np.float32), 0.5, rng)
        before, after = stroke3_to_polylines(drawing.astype(np.float32)), stroke3_to_polylines(dropped)
        assert len(before) == len(after)
        for s, t in zip(before, after):
            np.testing.assert_allclose(s[[0, -1]], t[[0, -1]])  # first and last points stay
            assert len(t) <= len(s)
    assert dropped.shape[1] == 3


def test_length_cap_drops_or_truncates(sheep):
    test = sheep.splits["test"]
    long = int((test.lengths() > 100).sum())
    dropped, n = cap_length(test, 100, "drop")
    assert n == long and len(dropped) == len(test) - long and dropped.lengths().max() <= 100
    cut, n = cap_length(test, 100, "truncate")
    assert n == long and len(cut) == len(test) and cut.lengths().max() == 100
    assert all(d[-1, 2] == 1 for d in cut.drawings)
    with pytest.raises(ValueError, match="overlong"):
        cap_length(test, 100, "wrap")


def test_evaluation_batches_cover_every_drawing_once_unaugmented(sheep):
    valid = sheep.splits["valid"]
    batches = list(evaluation_batches(valid, 1.0, batch_size=64))
    assert sum(len(b.lengths) for b in batches) == 300
    assert sum(int(b.lengths.sum()) for b in batches) == int(valid.lengths().sum()) + 300


def test_render_grid_colours_user_and_model_strokes(sheep, tmp_path):
    drawings = sheep.splits["test"].drawings[:4]
    cut = len(drawings[0]) // 2
    path = render_grid(drawings, tmp_path / "grid.svg", titles=["a", "b", "c", "d"],
                       generated_from=[cut, None, None, None])
    svg = path.read_text()
    strokes = sum(int(d[:, 2].sum()) for d in drawings)
    assert svg.count("<path") >= strokes + 1  # the cut stroke is split in two
    assert MODEL_COLOR in svg and USER_COLOR in svg and ">b</text>" in svg


def test_data_command_info_convert_render(sketches_dir, tmp_path, capsys):
    cat = str(sketches_dir / "quickdraw" / "raw" / "cat.ndjson")
    assert main(["data", "info", str(sketches_dir / "aaron_sheep.npz")]) == 0
    out = capsys.readouterr().out
    assert "train  aaron_sheep" in out and "7400" in out and "scale factor" in out
    assert main(["data", "convert", cat, "--out", str(tmp_path / "cat.ndjson")]) == 0
    lines = [json.loads(line) for line in (tmp_path / "cat.ndjson").read_text().splitlines()]
    assert len(lines) == 25 and all("key_id" in line for line in lines)
    assert max(max(max(s[0]), max(s[1])) for line in lines for s in line["drawing"]) == 255
    assert main(["data", "convert", str(tmp_path / "cat.ndjson"), "--out", str(tmp_path / "cat.npz")]) == 0
    assert main(["data", "render", str(tmp_path / "cat.npz"), "--split", "train", "--n", "9",
                 "--out", str(tmp_path / "g.svg")]) == 0
    assert (tmp_path / "g.svg").read_text().count(">cat</text>") == 9


def test_data_command_reports_bad_files_without_a_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.ndjson"
    bad.write_text('{"drawing": [[[0, 1], [0, 1]]]}\n{"drawing": [[[], []]]}\n')  # a stroke without points
    assert main(["data", "info", str(bad)]) == 2
    assert "bad.ndjson:2: stroke 0 has no points" in capsys.readouterr().err
    assert main(["data", "info", str(bad), "--skip-bad"]) == 0
    assert "skipped 1 bad drawing" in capsys.readouterr().err
    assert main(["data", "info", str(tmp_path / "missing.npz")]) == 2
