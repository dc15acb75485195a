"""Files people pass around must not run code when opened: a model, checkpoint or dataset carrying
a pickle payload is refused with a clear error on every path that reads one."""

import io
import json
import os
import pickle
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from sketchrnn.catalog import load_catalog, model_files
from sketchrnn.checkpoints import ModelFileError
from sketchrnn.cli import main

EXAMPLE = Path(__file__).resolve().parents[1] / "data" / "examples" / "bird.json"  # a drawing the project ships


class Payload:
    """Unpickling this runs os.system: what an attacker would hide in a file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture
def evil(tmp_path):
    marker = tmp_path / "owned"
    pt = tmp_path / "evil.pt"
    torch.save({"kind": "sketch", "model": {}, "config": {}, "payload": Payload(marker)}, pt)
    npz = tmp_path / "evil.npz"
    drawings = np.empty(2, dtype=object)
    drawings[:] = [np.zeros((3, 3), dtype=np.int16), Payload(marker)]
    np.savez(npz, train=drawings, valid=drawings, test=drawings)
    pickle.loads(pickle.dumps(Payload(tmp_path / "probe")))  # the payload is real: a plain load runs it
    assert (tmp_path / "probe").exists()
    return {"pt": str(pt), "npz": str(npz), "marker": marker, "dir": tmp_path}


@pytest.mark.parametrize("command", [
    ["eval", "--model", "{pt}", "--data", "{npz}"],
    ["sample", "--model", "{pt}"],
    ["complete", "--model", "{pt}", "--input", "{npz}"],
    ["import", "{pt}", "--out", "{dir}/out.pt"],
    ["text", "eval", "--model", "{pt}", "--data", "{npz}"],
    ["text", "sample", "--model", "{pt}"],
    ["data", "info", "{npz}"],
    ["eval", "--data", "{npz}"],
], ids=["eval-model", "sample", "complete", "import", "text-eval", "text-sample", "data-info", "eval-data"])
def test_a_payload_file_is_refused_and_runs_nothing(evil, command, capsys):
    argv = [part.format(**evil) for part in command]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "refused" in error and ("evil.pt" in error or "evil.npz" in error), error
    assert not evil["marker"].exists(), "the payload ran"


def test_serving_a_folder_with_a_payload_model_refuses_it(evil):
    with pytest.raises(ModelFileError, match="evil.pt: refused"):
        load_catalog(model_files([evil["dir"]]))
    assert not evil["marker"].exists()


def test_resuming_from_a_payload_checkpoint_refuses_it(evil, sketches_dir, capsys):
    run = evil["dir"] / "run"
    run.mkdir()
    os.replace(evil["pt"], run / "last.pt")
    data = str(sketches_dir / "quickdraw" / "simplified" / "cat.ndjson")
    assert main(["train", "--data", data, "--out", str(run), "--hidden", "16", "--steps", "2", "--resume",
                 "--quiet"]) == 2
    assert "last.pt: refused" in capsys.readouterr().err
    assert not evil["marker"].exists()


def test_damaged_files_are_named_and_not_called_pickles(shared_data, tmp_path, capsys):
    """A broken file is unreadable, not dangerous: each error names the file and what is wrong,
    sizes are checked before anything is allocated, and only a real payload is "refused"."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<i2", "fortran_order": False, "shape": (10**12, 3)})
    with zipfile.ZipFile(tmp_path / "forged.npz", "w") as archive:  # claims 6 TB, holds 60 bytes
        for split in ("train", "valid", "test"):
            archive.writestr(f"{split}.npy", header.getvalue() + bytes(60))
    with zipfile.ZipFile(tmp_path / "garbage.pt", "w") as archive:  # torch's layout, pickle bytes damaged
        archive.writestr("archive/data.pkl", b"\xa1" * 300)
        archive.writestr("archive/version", "3\n")
    info, dims, blobs = json.loads((shared_data / "models" / "bird.gen.json").read_text())
    blobs[2] = blobs[2][:1001]  # a weight array cut mid-way
    (tmp_path / "cut.gen.json").write_text(json.dumps([info, dims, blobs]))

    cases = [(["data", "info", "{dir}/forged.npz"], r"forged.npz: .*train.npy's header claims a 1000000000000x3 int16 "
                                                    r"array \(6000000000000 bytes\) but holds 60 bytes"),
             (["sample", "--model", "{dir}/garbage.pt"], r"garbage.pt: not a readable checkpoint \(damaged: "
                                                         r"Unsupported operand 161\)"),
             (["sample", "--model", "{dir}/cut.gen.json"], r"cut.gen.json: weight array 2 is not int16 data in base64"),
             (["guess", str(EXAMPLE), "--models", str(shared_data / "models"), "--recognizer", "{dir}/garbage.pt"],
              r"garbage.pt: not a readable checkpoint \(damaged: Unsupported operand 161\)")]
    for command, expected in cases:
        assert main([part.format(dir=tmp_path) for part in command]) == 2
        error = capsys.readouterr().err
        assert re.search(expected, error) and "pickle" not in error and "Traceback" not in error, error
