"""Loading a Sketch-RNN model from our checkpoints or from Magenta's sketch-rnn-js ``.gen.json``
files (importing and exporting those), and the default model the project ships. Finding models by
name and downloading them: ``catalog.py``."""

import base64
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from sketchrnn.core.checkpoint import CheckpointError, atomic_file, load_checkpoint, save_atomic
from sketchrnn.model import SketchRNN, SketchRNNConfig

# data/models/sheep.pt in the repository, mapped into the package (pyproject.toml)
DEFAULT_MODEL = Path(str(resources.files("sketchrnn.models") / "sheep.pt"))


class ModelFileError(ValueError):
    """A model file that cannot be loaded; the message names the file and the problem."""


@dataclass
class LoadedModel:
    model: SketchRNN
    scale_factor: float  # offsets are divided by this before they reach the model
    classes: list[str]
    name: str
    max_len: int = 250  # the longest drawing it trained on, in points: what a prefix is cut to


def _gen_json_weights(path: Path) -> tuple[dict, list[np.ndarray]]:
    try:
        info, dims, blobs = json.loads(path.read_text())
        if not isinstance(info, dict) or not isinstance(dims, list) or not isinstance(blobs, list):
            raise ValueError("expected an object and two lists")
    except (ValueError, TypeError, UnicodeDecodeError, RecursionError) as e:
        raise ModelFileError(f"{path}: not a sketch-rnn-js model ([info, dims, weights] JSON): {e}") from None
    if info.get("mode") not in (2, "2", "gen"):
        raise ModelFileError(f"{path}: mode {info.get('mode')!r} is not a decoder-only ('gen', 2) model")
    if len(dims) != 5 or len(blobs) != 5:
        raise ModelFileError(f"{path}: expected 5 weight arrays (output W, b, LSTM W_xh, W_hh, bias), got {len(blobs)}")
    arrays = []
    for index, (shape, blob) in enumerate(zip(dims, blobs)):
        try:
            # Magenta's encoding: little-endian int16, value = int16 / 32767 * 10.
            raw = np.frombuffer(base64.b64decode(blob, validate=True), dtype="<i2").astype(np.float32) / 32767 * 10
        except (ValueError, TypeError) as e:  # binascii.Error is a ValueError: a cut or edited blob
            raise ModelFileError(f"{path}: weight array {index} is not int16 data in base64: {e}") from None
        if raw.size != int(np.prod(shape)):
            raise ModelFileError(f"{path}: a weight array holds {raw.size} values, its dims say {shape}")
        arrays.append(raw.reshape(shape))
    return info, arrays


def import_gen_json(path: str | Path) -> LoadedModel:
    """A decoder-only sketch-rnn-js model as our SketchRNN with an LSTM decoder."""
    path = Path(path)
    info, (out_w, out_b, w_xh, w_hh, bias) = _gen_json_weights(path)
    hidden = w_hh.shape[0]
    mixtures = (out_b.shape[0] - 3) // 6
    config = SketchRNNConfig(mode="decoder", cell="lstm", hidden=hidden, mixtures=mixtures, dropout=0.0)
    model = SketchRNN.to_load(config)

    def to_torch_order(blocks):
        # Their gate blocks run (i, g, f, o) along the last axis; ours (i, f, g, o) along the first.
        i, g, f, o = np.split(blocks, 4, axis=-1)
        return torch.from_numpy(np.concatenate([i, f, g, o], axis=-1)).T.contiguous()

    cell = model.decoder.cell
    with torch.no_grad():
        cell.weight_ih.copy_(to_torch_order(w_xh))
        cell.weight_hh.copy_(to_torch_order(w_hh))
        b = to_torch_order(bias[None])[:, 0].clone()
        b[hidden : 2 * hidden] += 1.0  # their forget bias is a constant +1 inside the step
        cell.bias_ih.copy_(b)
        cell.bias_hh.zero_()
        model.output.weight.copy_(torch.from_numpy(out_w).T)
        model.output.bias.copy_(torch.from_numpy(out_b))
    name = info.get("name") or path.name.removesuffix(".gen.json")
    return LoadedModel(model.eval(), float(info["scale_factor"]), [name], name, int(info.get("max_seq_len", 250)))


def load_model(path: str | Path | None = None) -> LoadedModel:
    """Our checkpoint (.pt), a sketch-rnn-js .gen.json, or (None) the project's default model."""
    path = Path(path) if path is not None else DEFAULT_MODEL
    if not path.is_file():
        raise ModelFileError(f"{path}: {'a folder, not a model file' if path.is_dir() else 'no such model file'}")
    if path.name.endswith(".json"):
        return import_gen_json(path)
    try:
        ckpt = load_checkpoint(path, "sketch")
        model = SketchRNN.to_load(SketchRNNConfig(**ckpt["config"]))
        model.load_state_dict(ckpt["model"])
        name = path.parent.name if path.stem in ("best", "last") else path.stem
        return LoadedModel(model.eval(), float(ckpt["scale_factor"]), list(ckpt["classes"]), name,
                           int(ckpt["max_len"]))
    except CheckpointError as e:
        raise ModelFileError(f"{e}; expected a Sketch-RNN model") from None
    except KeyError as e:
        raise ModelFileError(f"{path}: a Sketch-RNN checkpoint without {e}") from None
    except (TypeError, RuntimeError) as e:
        detail = " ".join(str(e).split())[:200]
        raise ModelFileError(f"{path}: its weights do not fit its config ({detail})") from None


def save_model(loaded: LoadedModel, path: str | Path) -> None:
    """Write a standalone model checkpoint (weights, config, scale factor, classes)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_atomic({"kind": "sketch", "model": loaded.model.state_dict(), "config": loaded.model.checkpoint_config(),
                 "scale_factor": loaded.scale_factor, "classes": loaded.classes, "max_len": loaded.max_len}, Path(path))


GEN_JSON_MIXTURES = 20  # @magenta/sketch reads exactly this many mixture components (its NMIXTURE)
GEN_JSON_MAX_WEIGHT = 10.0  # the format stores round(w / 10 * 32767) as int16: |w| beyond 10 is clipped


def export_gen_json(loaded: LoadedModel, path: str | Path) -> dict:
    """Write a decoder-only LSTM model in sketch-rnn-js's format (what @magenta/sketch loads):
    ``[info, dims, weights]``, each weight array int16-quantised and base64-encoded, the LSTM's gate
    blocks in TensorFlow's (i, g, f, o) order with the forget bias's +1 left to the reader. Returns
    what quantising cost: the largest weight change and how many weights were clipped."""
    config = loaded.model.config
    if config.mode != "decoder":
        raise ModelFileError(f"{loaded.name}: a {config.mode} model; the sketch-rnn-js format that @magenta/sketch "
                             "reads holds decoder-only models")
    if config.cell != "lstm":
        raise ModelFileError(f"{loaded.name}: a {config.cell} decoder; the sketch-rnn-js format holds a plain LSTM")
    if config.mixtures != GEN_JSON_MIXTURES:
        raise ModelFileError(f"{loaded.name}: {config.mixtures} mixture components; @magenta/sketch reads "
                             f"{GEN_JSON_MIXTURES}")
    cell, hidden = loaded.model.decoder.cell, config.hidden

    def to_tf_order(blocks: torch.Tensor) -> np.ndarray:
        """Ours: (i, f, g, o) blocks along the first axis; theirs: (i, g, f, o) along the last."""
        i, f, g, o = blocks.detach().double().numpy().reshape(4, hidden, -1)
        return np.concatenate([i, g, f, o]).T  # (inputs, 4H); a bias comes out (1, 4H)

    bias = (cell.bias_ih + cell.bias_hh).detach().clone()
    bias[hidden : 2 * hidden] -= 1.0  # the reader adds +1 to the forget gate itself
    output = loaded.model.output
    arrays = [output.weight.detach().double().numpy().T, output.bias.detach().double().numpy(),
              to_tf_order(cell.weight_ih), to_tf_order(cell.weight_hh), to_tf_order(bias)[0]]
    blobs, clipped, error = [], 0, 0.0
    for array in arrays:
        scaled = np.round(array / GEN_JSON_MAX_WEIGHT * 32767)
        clipped += int((np.abs(scaled) > 32767).sum())
        quantised = np.clip(scaled, -32767, 32767).astype("<i2")
        error = max(error, float(np.abs(quantised.astype(np.float64) * GEN_JSON_MAX_WEIGHT / 32767 - array).max()))
        blobs.append(base64.b64encode(quantised.tobytes()).decode("ascii"))
    info = {"mode": 2, "version": 6, "max_seq_len": loaded.max_len, "name": loaded.name,
            "scale_factor": round(loaded.scale_factor, 6)}
    with atomic_file(path, "w") as f:
        json.dump([info, [list(a.shape) for a in arrays], blobs], f)
    return {"weights": int(sum(a.size for a in arrays)), "clipped": clipped, "max_error": error}

