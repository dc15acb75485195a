"""Stroke files in and out: every reader and writer on the real files, Google's simplifier against
Google's own simplified drawings, and a clear error for every kind of bad input."""

import json
import shutil

import numpy as np
import pytest

from sketchrnn.strokes import (
    StrokeFormatError,
    parse_ndjson_line,
    polylines_to_stroke3,
    read_ndjson,
    read_npz,
    stroke3_to_polylines,
    write_ndjson,
    write_npz,
)


def test_read_npz_keeps_splits_and_values(sketches_dir):
    splits = read_npz(sketches_dir / "aaron_sheep.npz")
    assert {k: len(v) for k, v in splits.items()} == {"train": 7400, "valid": 300, "test": 300}
    first = splits["train"][0]
    assert first.dtype == np.int16 and first.shape[1] == 3
    assert first[:2].tolist() == [[2, -4, 0], [9, -9, 0]]
    assert max(len(d) for s in splits.values() for d in s) == 250


def test_npz_round_trip_stays_int16(sketches_dir, tmp_path):
    splits = read_npz(sketches_dir / "short_kanji.npz")
    write_npz(tmp_path / "k.npz", splits)
    again = read_npz(tmp_path / "k.npz")
    for s in splits:
        assert len(again[s]) == len(splits[s])
        assert all(a.dtype == np.int16 and np.array_equal(a, b) for a, b in zip(again[s], splits[s]))


def test_polylines_round_trip_from_the_origin():
    strokes = [[[10, 10], [20, 10], [20, 30]], [[5, 5], [6, 9]]]
    s3 = polylines_to_stroke3(strokes)
    assert s3[0].tolist() == [0, 0, 0]  # the first offset is (0, 0)
    assert s3[:, 2].tolist() == [0, 0, 1, 0, 1]
    back = stroke3_to_polylines(s3)
    np.testing.assert_array_equal(back[0], np.array(strokes[0]) - [10, 10])
    np.testing.assert_array_equal(back[1], np.array(strokes[1]) - [10, 10])


def test_read_simplified_ndjson(sketches_dir):
    records, skipped = read_ndjson(sketches_dir / "quickdraw" / "monkey-1000.ndjson")
    assert len(records) == 1000 and skipped == 0
    line = json.loads((sketches_dir / "quickdraw" / "monkey-1000.ndjson").open().readline())
    first = records[0]
    assert first.key_id == str(line["key_id"]) and first.word == "monkey"
    assert first.strokes[:, 2].sum() == len(line["drawing"])
    xs, ys = line["drawing"][0][0], line["drawing"][0][1]
    np.testing.assert_array_equal(stroke3_to_polylines(first.strokes)[0], np.column_stack([xs, ys]) - [xs[0], ys[0]])


def _distance_to_polyline(points, line):
    """Distance from each point to the nearest segment of ``line``."""
    a, b = line[:-1], line[1:]
    ab = b - a
    t = np.clip(((points[:, None] - a) * ab).sum(-1) / np.maximum((ab**2).sum(-1), 1e-12), 0, 1)
    nearest = a + t[..., None] * ab
    return np.linalg.norm(points[:, None] - nearest, axis=-1).min(axis=1)


def test_raw_simplification_agrees_with_googles_simplified_files(sketches_dir):
    quickdraw = sketches_dir / "quickdraw"
    compared, identical, distances = 0, 0, []
    for raw_file in sorted((quickdraw / "raw").glob("*.ndjson")):
        google = {r.key_id: r for r in read_ndjson(quickdraw / "simplified" / raw_file.name)[0]}
        for ours in read_ndjson(raw_file)[0]:
            theirs = google[ours.key_id]
            ours_lines, their_lines = stroke3_to_polylines(ours.strokes), stroke3_to_polylines(theirs.strokes)
            assert len(ours_lines) == len(their_lines), f"{raw_file.name} {ours.key_id}: stroke counts differ"
            for a, b in zip(ours_lines, their_lines):
                # Both start at the origin; compare shapes both ways.
                distances += [_distance_to_polyline(a, b).mean(), _distance_to_polyline(b, a).mean()]
            compared += 1
            identical += np.array_equal(ours.strokes, theirs.strokes)
    assert compared == 56
    print(f"{identical} of {compared} identical; mean distance {np.mean(distances):.4f} px")
    assert identical >= 0.9 * compared
    assert np.mean(distances) < 1.0, f"mean distance {np.mean(distances):.3f} px"


def test_ndjson_round_trip_keeps_key_ids(sketches_dir, tmp_path):
    records, _ = read_ndjson(sketches_dir / "quickdraw" / "simplified" / "cat.ndjson")
    write_ndjson(tmp_path / "cat.ndjson", records)
    again, _ = read_ndjson(tmp_path / "cat.ndjson")
    assert [r.key_id for r in again] == [r.key_id for r in records]
    assert all(np.array_equal(a.strokes, b.strokes) for a, b in zip(again, records))
    assert json.loads((tmp_path / "cat.ndjson").open().readline())["word"] == "cat"


BAD_LINES = {
    "not json": ('{"drawing": [[[1, 2], [3', "not JSON"),
    "no drawing": ('{"word": "cat"}', "no 'drawing' field"),
    "empty drawing": ('{"drawing": []}', "empty drawing"),
    "empty stroke": ('{"drawing": [[[1, 2], [3, 4]], [[], []]]}', "stroke 1 has no points"),  # a dot is fine
    "x/y mismatch": ('{"drawing": [[[1, 2, 3], [3, 4]]]}', "different lengths"),
    "non-numeric": ('{"drawing": [[[1, "a"], [3, 4]]]}', "non-numeric"),
    "nan": ('{"drawing": [[[1, NaN], [3, 4]]]}', "NaN or infinite"),
    "absurd offset": ('{"drawing": [[[0, 1e9], [0, 0]]]}', "coordinate beyond 1e.06"),
}


@pytest.mark.parametrize("case", list(BAD_LINES))
def test_bad_ndjson_line_names_file_line_and_problem(tmp_path, case):
    line, problem = BAD_LINES[case]
    path = tmp_path / "bad.ndjson"
    path.write_text('{"drawing": [[[0, 10], [0, 10]]]}\n' + line + "\n")
    with pytest.raises(StrokeFormatError, match=rf"bad.ndjson:2: .*{problem}"):
        read_ndjson(path)
    records, skipped = read_ndjson(path, skip_bad=True)
    assert len(records) == 1 and skipped == 1


def test_file_that_is_not_what_its_suffix_says(sketches_dir, tmp_path):
    fake = tmp_path / "fake.npz"
    fake.write_text("hello")
    with pytest.raises(StrokeFormatError, match="fake.npz: not a readable Sketch-RNN .npz"):
        read_npz(fake)
    binary = tmp_path / "binary.ndjson"
    shutil.copy(sketches_dir / "aaron_sheep.npz", binary)
    with pytest.raises(StrokeFormatError, match="binary.ndjson"):
        read_ndjson(binary)


def test_truncated_npz_is_a_clear_error(sketches_dir, tmp_path):
    data = (sketches_dir / "aaron_sheep.npz").read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(StrokeFormatError, match="cut.npz"):
        read_npz(cut)


def test_npz_without_splits(tmp_path):
    np.savez(tmp_path / "odd.npz", train=np.empty(0, dtype=object))
    with pytest.raises(StrokeFormatError, match="odd.npz: missing split.*valid, test"):
        read_npz(tmp_path / "odd.npz")


def test_parse_raw_line_simplifies_into_the_0_255_frame():
    raw = {"key_id": 7, "drawing": [[[100.5, 300.25, 500.0], [50.0, 52.0, 51.0], [0, 10, 20]],
                                    [[100.0, 100.0], [50.0, 250.0], [30, 40]]]}
    record = parse_ndjson_line(json.dumps(raw), "x:1")
    lines = stroke3_to_polylines(record.strokes)
    absolute = np.concatenate(lines) + [0, 0]
    assert record.key_id == "7" and len(lines) == 2
    assert np.ptp(absolute, axis=0).max() == 255  # scaled so the maximum is 255
    assert np.array_equal(absolute, np.round(absolute))
