"""The command line as a new user meets it: every subcommand given each kind of bad value (0,
negative, huge, NaN, a file of the wrong kind, a folder, an empty file, its own output as input)
answers with exit code 2 and one line naming the flag, file or limit: no traceback, and no input
or run file changed. Then the files it writes: runs kept, conversions that round-trip, atomic."""

import hashlib
import os
import signal
import socket
import stat
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA

from sketchrnn.cli import main
from sketchrnn.strokes import read_npz, write_npz

MODELS = SHARED_DATA / "models"


def tiny_npz(source: Path, path: Path) -> Path:
    drawings = read_npz(source)
    write_npz(path, {"train": drawings["train"][:20], "valid": drawings["valid"][:4], "test": drawings["test"][:4]})
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Tiny inputs of every kind, and a tiny trained run of each kind (two steps)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATA} (they come with the project's shared/ folder)")
    sketches_dir = SHARED_DATA / "sketches"
    root = tmp_path_factory.mktemp("walk")
    tiny_npz(sketches_dir / "aaron_sheep.npz", root / "sheep.npz")
    (root / "dots.json").write_text("[[[10, 10]], [[0, 0], [20, 5]], [[30, 30]]]")  # two dots and a line
    (root / "words.txt").write_text("the quick brown fox jumps over the lazy dog\n" * 40)
    (root / "empty.npz").write_bytes(b"")
    (root / "empty.txt").write_text("")
    (root / "corrupt.npz").write_bytes((sketches_dir / "aaron_sheep.npz").read_bytes()[:4000])
    (root / "ndjson.npz").write_text('{"drawing": [[[0, 1], [0, 1]]]}\n')
    (root / "good.svg").write_text("<svg>a good drawing</svg>")
    (root / "folder").mkdir()
    (root / "model.gen.json").write_bytes((MODELS / "sheep.gen.json").read_bytes())
    tiny = ["--hidden", "8", "--batch-size", "4", "--steps", "2", "--eval-every", "2", "--quiet"]
    assert main(["train", "--data", str(root / "sheep.npz"), "--out", str(root / "run"), *tiny]) == 0
    assert main(["text", "train", "--data", str(root / "words.txt"), "--out", str(root / "textrun"), "--hidden", "8",
                 "--layers", "1", "--bptt", "5", "--batch-size", "2", "--steps", "2", "--minutes", "0",
                 "--eval-every", "2", "--precision", "fp32", "--quiet"]) == 0
    return {p.name: p for p in root.iterdir()}


def hashes(root: Path) -> dict:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


# (command line with {name} for the files above, what the one line must say)
MISTAKES = [
    ("train --data {sheep.npz} --out {new} --hidden 0", "argument --hidden: must be in [1, 8192], got 0"),
    ("train --data {sheep.npz} --out {new} --hidden 1000000000", "argument --hidden: must be in [1, 8192]"),
    ("train --data {sheep.npz} --out {new} --batch-size 0", "argument --batch-size: must be in [1, 100000], got 0"),
    ("train --data {sheep.npz} --out {new} --eval-every 0", "argument --eval-every: must be >= 1, got 0"),
    ("train --data {sheep.npz} --out {new} --drop-prob 2", "argument --drop-prob: must be in [0, 1], got 2"),
    ("train --data {sheep.npz} --out {new} --lr nan", "argument --lr: must be a finite number, got nan"),
    ("train --data {sheep.npz} --out {new} --steps -1", "argument --steps: must be >= 0, got -1"),
    ("train --data {sheep.npz} --out {new} --cell gru", "pass --dropout 0"),
    ("train --data {folder} --out {new}", "folder: a folder, not a file"),
    ("train --data {empty.npz} --out {new}", "empty.npz: not a readable Sketch-RNN .npz"),
    ("train --data {sheep.npz} --out {run}", "already holds a run"),
    ("text train --data {words.txt} --out {new} --hidden 0", "argument --hidden: must be in [1, 8192], got 0"),
    ("text train --data {words.txt} --out {new} --bptt 0", "argument --bptt: must be >= 1, got 0"),
    ("text train --data {words.txt} --out {new} --layers 0", "argument --layers: must be in [1, 64], got 0"),
    ("text train --data {words.txt} --out {textrun}", "already holds a run"),
    ("text sample --model {textrun}/best.pt --temperature 0", "argument --temperature: must be > 0, got 0"),
    ("text sample --model {textrun}/best.pt --temperature -1", "argument --temperature: must be > 0, got -1"),
    ("text sample --model {textrun}/best.pt --top-k -1", "argument --top-k: must be >= 0, got -1"),
    ("text sample --model {model.gen.json}", "model.gen.json: not a checkpoint"),
    ("text sample --model {folder}", "folder: a folder, not a file"),
    ("text eval --model {textrun}/best.pt --data {empty.txt}", "empty.txt"),
    ("eval --data {sheep.npz} --range a:b", "argument --range: must be START:STOP"),
    ("eval --data {sheep.npz} --model {ndjson.npz}", "ndjson.npz: not a checkpoint"),
    ("sample --n 0 --out {new}.svg", "argument --n: must be in [1, 10000], got 0"),
    ("sample --n -1 --out {new}.svg", "argument --n: must be in [1, 10000], got -1"),
    ("sample --n 99999999999 --out {new}.svg", "argument --n: must be in [1, 10000]"),
    ("sample --temperature nan --out {new}.svg", "argument --temperature: must be a finite number"),
    ("sample --out {folder}", "--out {folder}: a folder; name the file to write"),
    ("sample --model {folder} --out {new}.svg", "folder: a folder, not a model file"),
    ("complete --input {model.gen.json} --out {new}.svg", "model.gen.json: a model file, not a drawing"),
    ("complete --input {dots.json} --scale 0 --out {good.svg}", "argument --scale: must be > 0, got 0"),
    ("complete --input {dots.json} --scale -1 --out {good.svg}", "argument --scale: must be > 0, got -1"),
    ("complete --input {dots.json} --out {dots.json}", "that is also this command's input"),
    ("complete --input {dots.json} --out {new}.svg --json {dots.json}", "that is also this command's input"),
    ("complete --input {folder} --out {new}.svg", "folder: a folder, not a file"),
    ("complete --input {empty.txt} --out {new}.svg", "empty.txt: not JSON"),
    ("complete --input {dots.json} --index -1 --out {new}.svg", "argument --index: must be >= 0, got -1"),
    ("reconstruct --data {sheep.npz} --n -1 --out {new}.svg", "argument --n: must be in [1, 10000], got -1"),
    ("interpolate --data {sheep.npz} --steps 0 --out {new}.svg", "argument --steps: must be in [2, 10000], got 0"),
    ("interpolate --data {sheep.npz} --first -1 --out {new}.svg", "argument --first: must be >= 0, got -1"),
    ("interpolate --data {sheep.npz} --first 999 --out {new}.svg", "--first 999: the test split of"),
    ("import {model.gen.json} --out {model.gen.json}", "that is also this command's input"),
    ("import {run}/last.pt --out {run}/last.pt", "that is also this command's input"),
    ("import {model.gen.json} --out {run}/best.pt", "a training run's checkpoint"),
    ("import {empty.npz} --out {new}.pt", "empty.npz: not a checkpoint"),
    ("export {run}/best.pt --out {folder}", "a folder; name the file to write"),
    ("data info {corrupt.npz}", "corrupt.npz: not a readable Sketch-RNN .npz"),
    ("data info {empty.npz}", "empty.npz: not a readable Sketch-RNN .npz"),
    ("data info {ndjson.npz}", "ndjson.npz: not a readable Sketch-RNN .npz"),
    ("data info {folder}", "folder: a folder, not a file"),
    ("data info {sheep.npz} --seed -1", "argument --seed: must be in [0, 4294967295], got -1"),
    ("data convert {sheep.npz} --split test --out {sheep.npz}", "that is also this command's input"),
    ("data convert {sheep.npz} --out {new}.csv", "unknown output format '.csv'"),
    ("data render {sheep.npz} --n 0 --out {new}.svg", "argument --n: must be in [1, 10000], got 0"),
    ("data render {sheep.npz} --out {sheep.npz}", "that is also this command's input"),
    ("rnn adding-task --length 0 --out {new}", "argument --length: must be >= 2, got 0"),
    ("rnn adding-task --hidden -3 --out {new}", "argument --hidden: must be in [1, 8192], got -3"),
    ("rnn gradient-flow --steps 0", "argument --steps: must be in [2, 10000], got 0"),
    ("rnn gradient-flow --out {folder}", "a folder; name the file to write"),
    ("serve --port 99999", "argument --port: must be in [1, 65535], got 99999"),
    ("serve --port 0", "argument --port: must be in [1, 65535], got 0"),
    ("serve --max-n 0", "argument --max-n: must be >= 1, got 0"),
    ("serve --workers 0", "argument --workers: must be in [1, 1024], got 0"),
    ("serve --rate nan", "argument --rate: must be a finite number, got nan"),
    ("models download sheep --dir {empty.npz}", "empty.npz"),
    ("models list --dir {empty.npz}", "empty.npz"),
    ("data download cat --max 0 --dir {new}", "argument --max: must be in [1, 10000], got 0"),
    ("recognizer build --models {folder}", "folder: no .pt or .gen.json models in this folder"),
    ("recognizer build --models {model.gen.json} --drawings {empty.txt}", "empty.txt: not a folder of .ndjson"),
    ("recognizer build --models {model.gen.json} --steps 0", "argument --steps: must be >= 1, got 0"),
    ("guess {dots.json} --models {model.gen.json} --top 0", "argument --top: must be in [1, 1000], got 0"),
    ("guess {model.gen.json} --models {model.gen.json}", "model.gen.json: a model file, not a drawing"),
]


@pytest.mark.parametrize("line, says", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_a_mistake_gets_one_clear_line_exit_2_and_changes_no_file(files, tmp_path, capsys, line, says):
    root = next(iter(files.values())).parent
    names = {**{name: str(path) for name, path in files.items()}, "new": str(tmp_path / "new")}
    argv = line.replace("{", "\0").replace("}", "\1")
    for name, path in names.items():
        argv = argv.replace(f"\0{name}\1", path)
    before = hashes(root)
    try:
        code = main(argv.split())
    except SystemExit as e:  # argparse's refusals
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, err
    last = err.strip().splitlines()[-1]
    assert "Traceback" not in err and last.startswith("sketchrnn"), err
    expected = says.replace("{folder}", str(files["folder"]))
    assert expected in last, last
    assert hashes(root) == before
    assert not list(tmp_path.iterdir())  # and wrote nothing


def test_every_subcommand_is_walked():
    from test_cli import all_parsers

    from sketchrnn.cli import build_parser
    commands = {p.prog.removeprefix("sketchrnn ") for p in all_parsers(build_parser())
                if not any(a.__class__.__name__ == "_SubParsersAction" for a in p._actions)}
    walked = {" ".join(w for w in m[0].split() if not w.startswith(("-", "{")))[:40] for m in MISTAKES}
    missing = [c for c in commands if not any(w.startswith(c) for w in walked)]
    assert not missing, f"no mistake walked for: {missing}"


# --- runs are kept -----------------------------------------------------------------------------


def test_resume_refuses_other_data_or_model_shape_naming_the_difference(files, tmp_path, capsys, sketches_dir):
    run = tmp_path / "run"
    tiny = ["--batch-size", "4", "--steps", "2", "--eval-every", "2", "--quiet"]
    assert main(["train", "--data", str(files["sheep.npz"]), "--out", str(run), "--hidden", "8", *tiny]) == 0
    capsys.readouterr()
    before = hashes(run)
    kanji = tiny_npz(sketches_dir / "short_kanji.npz", tmp_path / "short_kanji.npz")
    assert main(["train", "--data", str(kanji), "--out", str(run), "--hidden", "8", "--resume", *tiny]) == 2
    err = capsys.readouterr().err
    assert "--resume with another model or data" in err and "classes ['sheep'] in the run, ['short_kanji'] now" in err
    assert "scale_factor" in err
    assert main(["train", "--data", str(files["sheep.npz"]), "--out", str(run), "--hidden", "16", "--resume",
                 *tiny]) == 2
    err = capsys.readouterr().err
    assert "hidden 8 in the run, 16 now" in err and "size mismatch" not in err
    assert hashes(run) == before
    # --overwrite starts over; more steps of the same run resume
    assert main(["train", "--data", str(kanji), "--out", str(run), "--hidden", "8", "--overwrite", *tiny]) == 0
    assert main(["train", "--data", str(kanji), "--out", str(run), "--hidden", "8", "--resume",
                 *tiny[:2], "--steps", "4", "--eval-every", "2", "--quiet"]) == 0


def test_text_resume_refuses_another_file(files, tmp_path, capsys):
    other = tmp_path / "other.txt"
    other.write_text("completely different text with other letters: XYZ 0123456789!\n" * 40)
    common = ["--hidden", "8", "--layers", "1", "--bptt", "5", "--batch-size", "2", "--steps", "4", "--minutes", "0",
              "--eval-every", "2", "--precision", "fp32", "--quiet", "--resume"]
    assert main(["text", "train", "--data", str(other), "--out", str(files["textrun"]), *common]) == 2
    err = capsys.readouterr().err
    assert "data 'words.txt' in the run, 'other.txt' now" in err and "vocab" in err


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_stop_before_the_first_log_row_saves_and_exits_0(files, tmp_path, monkeypatch, capsys, stop):
    """The signal arrives during the first step: last.pt is saved, no learning curve (no rows)."""
    import sketchrnn.data

    batch = sketchrnn.data.Batcher.batch

    def batch_then_signal(self, step):
        os.kill(os.getpid(), stop)
        return batch(self, step)

    monkeypatch.setattr(sketchrnn.data.Batcher, "batch", batch_then_signal)
    out = tmp_path / "run"
    assert main(["train", "--data", str(files["sheep.npz"]), "--out", str(out), "--hidden", "8", "--batch-size", "4",
                 "--steps", "100", "--quiet"]) == 0
    assert '"status": "interrupted"' in capsys.readouterr().out
    assert (out / "last.pt").exists() and not (out / "learning_curve.svg").exists()


# --- what we write, we read ---------------------------------------------------------------------


def test_npz_to_ndjson_to_npz_keeps_drawings_dots_and_splits(sketches_dir, tmp_path, capsys):
    """aaron_sheep holds 129 drawings with one-point strokes (dots); ndjson starts every drawing
    at the origin, so the first offset is the one thing a conversion to ndjson changes."""
    ndjson, back, again = tmp_path / "sheep.ndjson", tmp_path / "back.npz", tmp_path / "again.npz"
    assert main(["data", "convert", str(sketches_dir / "aaron_sheep.npz"), "--out", str(ndjson)]) == 0
    assert main(["data", "convert", str(ndjson), "--out", str(back)]) == 0
    assert main(["data", "convert", str(back), "--out", str(tmp_path / "again.ndjson")]) == 0
    assert main(["data", "convert", str(tmp_path / "again.ndjson"), "--out", str(again)]) == 0
    original, converted, twice = read_npz(sketches_dir / "aaron_sheep.npz"), read_npz(back), read_npz(again)
    for split in ("train", "valid", "test"):
        assert len(converted[split]) == len(original[split])  # 7400 / 300 / 300
        assert all(np.array_equal(a[1:], b[1:]) for a, b in zip(original[split], converted[split]))
        assert all(np.array_equal(a, b) for a, b in zip(converted[split], twice[split]))
    assert main(["data", "info", str(ndjson)]) == 0
    assert "train  sheep" in capsys.readouterr().out


def test_dots_are_drawings_everywhere(files, tmp_path, capsys):
    out = tmp_path / "c.svg"
    fast = ["--n", "1", "--seed", "1", "--max-points", "20", "--scale", "5"]
    assert main(["complete", "--input", str(files["dots.json"]), *fast, "--out", str(out),
                 "--json", str(tmp_path / "c.json")]) == 0
    # the JSON complete writes reads back as an input
    assert main(["complete", "--input", str(tmp_path / "c.json"), *fast, "--out", str(out)]) == 0


# --- files are written whole or not at all -----------------------------------------------------


def test_an_interrupted_conversion_leaves_the_old_file_whole(files, tmp_path, monkeypatch):
    import sketchrnn.strokes

    target = tmp_path / "victim.ndjson"
    assert main(["data", "convert", str(files["sheep.npz"]), "--out", str(target)]) == 0
    before = target.read_bytes()
    real, written = sketchrnn.strokes.stroke3_to_polylines, []

    def interrupt_midway(s3):
        written.append(1)
        if len(written) == 10:
            raise KeyboardInterrupt
        return real(s3)

    monkeypatch.setattr(sketchrnn.strokes, "stroke3_to_polylines", interrupt_midway)
    assert main(["data", "convert", str(files["sheep.npz"]), "--split", "train", "--out", str(target)]) == 130
    assert target.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["victim.ndjson"]


def test_written_files_are_readable_by_others(files, tmp_path, capsys):
    """Downloads, imports and SVGs get the usual permissions (the umask's), not a temp file's 0600."""
    umask = os.umask(0o022)
    try:
        assert main(["models", "download", "sheep", "--dir", str(tmp_path), "--base-url", MODELS.as_uri()]) == 0
        assert main(["import", str(files["model.gen.json"]), "--out", str(tmp_path / "sheep.pt")]) == 0
    finally:
        os.umask(umask)
    for name in ("sheep.gen.json", "sheep.pt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name


def test_help_states_each_range_once(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    shown = capsys.readouterr().out
    assert "(default: 0.1; in [0, 1])" in " ".join(shown.split())  # --drop-prob


def test_serving_on_a_port_in_use_is_one_line(capsys):
    """Another program listening on the port: one line naming the address, exit 2, no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port), "--workers", "1"]) == 2
    error = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in error and "address already in use" in error
    assert "Traceback" not in error and len(error.strip().splitlines()) == 1, error
