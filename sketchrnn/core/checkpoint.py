"""Checkpoint files: written atomically, read without unpickling anything but tensors and plain
data, with every random generator's state so a resumed run draws what it would have drawn."""

import os
import pickle
import random
import re
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch


@contextmanager
def atomic_file(path: str | Path, mode: str = "wb"):
    """A file object to write ``path`` through: the writing goes to a temp file in the same
    folder, renamed over ``path`` only when the block ends without an error, so an interrupted
    or failed write leaves the previous file intact (or none), never a truncated one. Every file
    the package writes goes through here."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(21, "a folder, not a file", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make the file private
        os.close(fd)
        with open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:  # f.name: the temp file
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_atomic(obj: Any, path: Path) -> None:
    """torch.save through ``atomic_file``: a crash mid-write leaves the previous checkpoint intact."""
    with atomic_file(path) as f:
        torch.save(obj, f)


class CheckpointError(ValueError):
    """A file that is not a checkpoint of the kind asked for; the message names the file."""


def read_checkpoint(path: str | Path) -> Any:
    """What ``torch.save`` wrote, on the CPU whatever device wrote it, refusing anything but
    tensors and plain data: a file someone passes around must not run code when opened (a pickle
    can). Every failure is a CheckpointError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: {'a folder, not a file' if path.is_dir() else 'no such file'}")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; anything else is another kind of file
        raise CheckpointError(f"{path}: not a checkpoint (torch.save's zip format)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # The weights-only loader names the global it refused; without one the pickle is damaged,
        # not dangerous, and is said to be unreadable like any other broken file.
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        if found:
            raise CheckpointError(f"{path}: refused: it holds pickled objects ({found.group(1)}), not only "
                                  "tensors and plain data; loading it could run code") from None
        reason = re.search(r"WeightsUnpickler error:\s*(.+)", str(e)) or re.search(r"(.+)", str(e))
        raise CheckpointError(f"{path}: not a readable checkpoint (damaged: {reason.group(1)})") from None
    except Exception as e:  # a truncated or foreign file fails in many ways inside torch.load
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from None
    return ckpt


def load_checkpoint(path: str | Path, kind: str | None = None) -> dict:
    """A sketchrnn checkpoint (``read_checkpoint``); with ``kind``, one of another kind is
    refused by name."""
    ckpt = read_checkpoint(path)
    if not isinstance(ckpt, dict) or "kind" not in ckpt:
        raise CheckpointError(f"{path}: not a sketchrnn checkpoint (no \"kind\")")
    if kind is not None and ckpt["kind"] != kind:
        raise CheckpointError(f"{path}: a {ckpt['kind']} checkpoint, not a {kind} one")
    return ckpt


def rank_seed(seed: int, rank: int) -> int:
    """Rank 0 keeps the seed (a one-process run is unchanged); other ranks draw other dropout masks."""
    return seed if rank == 0 else int(np.random.SeedSequence((seed, rank)).generate_state(1)[0])


def rng_state() -> dict:
    """Every generator's state in types a weights-only load accepts (tensors, numbers, tuples)."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, gauss)}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, position, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
