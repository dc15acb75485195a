"""Every bad file gets a one-line error naming the file and the problem, and exit code 2: never a
traceback (found by feeding the command line 131 broken files)."""

import json

import numpy as np
import pytest
import torch

from sketchrnn.cli import main
from sketchrnn.model import SketchRNN, SketchRNNConfig


def write(path, content):
    path.write_text(content) if isinstance(content, str) else path.write_bytes(content)
    return path


@pytest.fixture
def files(tmp_path, sketches_dir):
    small = SketchRNN(SketchRNNConfig(hidden=8, mixtures=2))
    torch.save({"kind": "sketch", "model": small.state_dict(), "config": {"hidden": 8, "mixtures": 2},
                "classes": ["x"], "max_len": 250}, tmp_path / "noscale.pt")
    torch.save({"kind": "sketch", "model": {}, "config": {"hidden": 8}, "scale_factor": 1.0, "classes": ["x"],
                "max_len": 250}, tmp_path / "noweights.pt")
    np.save(tmp_path / "array.npy", np.zeros(3))
    (tmp_path / "array.npy").rename(tmp_path / "array.npz")
    (tmp_path / "folder").mkdir()
    cat = (sketches_dir / "quickdraw" / "simplified" / "cat.ndjson").read_text().splitlines()[0]
    write(tmp_path / "null.gen.json", "null")
    write(tmp_path / "list.gen.json", "[1, 2]")
    write(tmp_path / "object.gen.json", '{"a": 1}')
    write(tmp_path / "deep.ndjson", '{"drawing": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    write(tmp_path / "bignum.ndjson", '{"drawing": [[[' + "9" * 5000 + ", 1], [1, 2]]]}\n" + cat + "\n")
    write(tmp_path / "huge.ndjson", json.dumps({"drawing": [[[1.7e308, -1.7e308], [1, 2], [0, 1]]]}) + "\n")
    write(tmp_path / "binary.txt", b"\x89PNG\r\n\x1a\n\x00\x00")
    return tmp_path


DATA = "../shared/data/sketches/aaron_sheep.npz"


@pytest.mark.parametrize("command, words", [
    (["eval", "--model", "{d}/null.gen.json", "--data", DATA], "null.gen.json: not a sketch-rnn-js model"),
    (["eval", "--model", "{d}/list.gen.json", "--data", DATA], "list.gen.json: not a sketch-rnn-js model"),
    (["sample", "--model", "{d}/object.gen.json"], "object.gen.json: not a sketch-rnn-js model"),
    (["serve", "--model", "{d}/null.gen.json", "--port", "1"], "null.gen.json: not a sketch-rnn-js model"),
    (["sample", "--model", "{d}/noscale.pt"], "noscale.pt: a Sketch-RNN checkpoint without 'scale_factor'"),
    (["sample", "--model", "{d}/noweights.pt"], "noweights.pt: its weights do not fit its config"),
    (["data", "info", "{d}/array.npz"], "array.npz: not a readable Sketch-RNN .npz"),
    (["data", "info", "{d}/deep.ndjson"], "deep.ndjson:1: JSON nested too deeply"),
    (["data", "info", "--skip-bad", "{d}/deep.ndjson"], "deep.ndjson: no drawings"),
    (["data", "info", "{d}/bignum.ndjson"], "bignum.ndjson:1: not usable JSON"),
    (["data", "info", "{d}/huge.ndjson"], "huge.ndjson:1: stroke 0 has a coordinate beyond"),
    (["text", "train", "--data", "{d}/folder", "--out", "{d}/run"], "folder: a folder, not a text file"),
    (["text", "eval", "--model", "{d}/noscale.pt", "--data", "{d}/folder"], "noscale.pt: a sketch checkpoint"),
    (["text", "train", "--data", "{d}/binary.txt", "--out", "{d}/run"], "binary.txt: not UTF-8"),
], ids=lambda value: value if isinstance(value, str) else None)
def test_a_bad_file_gets_one_line_naming_it(files, command, words, capsys):
    assert main([part.format(d=files) for part in command]) == 2
    error = capsys.readouterr().err.strip()
    assert words in error and "\n" not in error and "Traceback" not in error, error


def test_skip_bad_skips_a_line_json_cannot_read(files, capsys):
    assert main(["data", "info", "--skip-bad", str(files / "bignum.ndjson")]) == 0
    assert "skipped 1 bad drawing" in capsys.readouterr().err
