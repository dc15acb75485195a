"""Files people pass around must not run code when opened: a model, checkpoint or dataset carrying
a pickle payload is refused with a clear error on every path that reads one."""

import os
import pickle

import numpy as np
import pytest
import torch

from sketchrnn.catalog import load_catalog, model_files
from sketchrnn.checkpoints import ModelFileError
from sketchrnn.cli import main


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
