"""Drawings prepared for training: files as classes, splits, one scale factor, augmentation, and
stroke-5 batches padded to the longest drawing in each batch.

Stroke-5 is [dx, dy, p1, p2, p3]: pen down, pen up, end of sketch. A drawing of N points becomes
N + 2 stroke-5 rows, S0 first and one end-of-sketch row last, and a batch is time-major:

    full[:, b] = S0  p_1  p_2 ... p_N  end  pad ... pad      S0 = [0,0,1,0,0], end = pad = [0,0,0,0,1]
    inputs     = full[:-1]    (T, B, 5)   what the decoder reads at each step
    targets    = full[1:]     (T, B, 5)   what it must predict; lengths[b] = N + 1 real steps
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sketchrnn.core import distributed
from sketchrnn.strokes import SPLITS, StrokeFormatError, check_stroke3, read_ndjson, read_npz

OFFSET_CLAMP = 1000.0  # Magenta's limit on a single offset before normalising
S0 = (0.0, 0.0, 1.0, 0.0, 0.0)
END = (0.0, 0.0, 0.0, 0.0, 1.0)


@dataclass
class SketchSet:
    """The drawings of one split, each with its class and, if known, its Quick, Draw! key id."""

    drawings: list[np.ndarray]  # stroke-3, float32, in the file's own units
    labels: np.ndarray  # class index of each drawing
    key_ids: list[str | None]

    def __len__(self) -> int:
        return len(self.drawings)

    def lengths(self) -> np.ndarray:
        return np.array([len(d) for d in self.drawings], dtype=np.int64)


@dataclass
class SketchData:
    classes: list[str]  # one per input file, named after it
    splits: dict[str, SketchSet]  # train / valid / test, and "all" in file order
    skipped: int = 0  # bad drawings skipped with skip_bad


def read_drawings(path: Path, skip_bad: bool = False, simplify: bool = True):
    """A file's drawings in file order as (split or None, stroke-3, key id), and how many bad
    ones were skipped. ``.npz`` names each drawing's split; ndjson may (a "split" field, as our
    conversions write), or leaves it to the caller (None)."""
    if not path.is_file():
        raise StrokeFormatError(f"{path}: {'a folder, not a file' if path.is_dir() else 'no such file'}")
    if path.suffix == ".ndjson":
        records, skipped = read_ndjson(path, simplify=simplify, skip_bad=skip_bad)
        return [(r.split, r.strokes, r.key_id) for r in records], skipped
    if path.suffix != ".npz":
        raise StrokeFormatError(f"{path}: unknown format {path.suffix!r}; expected .npz or .ndjson")
    found, skipped = [], 0
    for split, drawings in read_npz(path).items():
        for i, d in enumerate(drawings):
            try:
                found.append((split, check_stroke3(d, f"{path}: {split}[{i}]"), None))
            except StrokeFormatError:
                if not skip_bad:
                    raise
                skipped += 1
    return found, skipped


def load_sketches(
    paths: list[str | Path],
    skip_bad: bool = False,
    simplify: bool = True,
    seed: int = 0,
    valid_fraction: float = 0.05,
    test_fraction: float = 0.05,
) -> SketchData:
    """Read files, each one class. ``.npz`` keeps its own splits; ndjson drawings are split by a
    seeded permutation, the same every time for the same file and seed. The split "all" holds
    every drawing in file order."""
    classes, skipped = [], 0
    parts = {s: ([], [], []) for s in (*SPLITS, "all")}  # drawings, labels, key ids
    for label, path in enumerate(map(Path, paths)):
        if path.stem in classes:
            raise StrokeFormatError(f"{path}: a second file for class {path.stem!r}; rename one of them")
        classes.append(path.stem)
        found, bad = read_drawings(path, skip_bad, simplify)
        skipped += bad
        rank = np.empty(len(found), dtype=np.int64)
        rank[np.random.default_rng(seed).permutation(len(found))] = np.arange(len(found))
        n_valid, n_test = round(len(found) * valid_fraction), round(len(found) * test_fraction)
        for (split, drawing, key), r in zip(found, rank):
            if split is None:
                split = "valid" if r < n_valid else "test" if r < n_valid + n_test else "train"
            for name in (split, "all"):
                parts[name][0].append(drawing)
                parts[name][1].append(label)
                parts[name][2].append(key)
    splits = {s: SketchSet(d, np.array(labels, dtype=np.int64), k) for s, (d, labels, k) in parts.items()}
    return SketchData(classes, splits, skipped)


def to_model_units(drawing: np.ndarray, scale: float) -> np.ndarray:
    """The one conversion of a drawing (stroke-3) into the model's units: offsets clamped to
    +-OFFSET_CLAMP, divided by ``scale`` (drawing units per model unit)."""
    out = drawing.astype(np.float32)
    out[:, :2] = np.clip(out[:, :2], -OFFSET_CLAMP, OFFSET_CLAMP) / np.float32(scale)
    return out


def stroke5(drawing: np.ndarray) -> np.ndarray:
    """stroke-3 rows [dx, dy, p] -> stroke-5 rows [dx, dy, 1 - p, p, 0] (N, 5): no S0, no end."""
    pen = drawing[:, 2:3].astype(np.float32)
    return np.concatenate([drawing[:, :2].astype(np.float32), 1 - pen, pen, np.zeros_like(pen)], 1)


def scale_factor(drawings: list[np.ndarray]) -> float:
    """Standard deviation of all offsets, dx and dy pooled, after clamping (Magenta's
    normalising scale); computed on the training split and applied to every split."""
    offsets = np.concatenate([d[:, :2] for d in drawings]).clip(-OFFSET_CLAMP, OFFSET_CLAMP)
    return float(offsets.std())


def drop_points(drawing: np.ndarray, prob: float, rng: np.random.Generator) -> np.ndarray:
    """Magenta's point dropping: merge a pen-down point into its predecessor with probability
    ``prob``. A stroke's first and last points never move, so the shape's outline stays."""
    pen = drawing[:, 2]
    n = len(drawing)
    if n < 3 or prob <= 0:
        return drawing
    # Droppable: pen down at i and at i-1, and i-1 is not a stroke's first point.
    starts = np.concatenate([[True], pen[:-1] == 1])
    droppable = np.zeros(n, dtype=bool)
    droppable[1:] = (pen[1:] == 0) & (pen[:-1] == 0) & ~starts[:-1]
    drop = droppable & (rng.random(n) < prob)
    if not drop.any():
        return drawing
    # Each kept point moves to where its run of dropped successors ends; later offsets hold.
    absolute = np.cumsum(drawing[:, :2], axis=0)
    run = np.cumsum(~drop) - 1  # index of the kept point each point belongs to
    run_end = np.zeros((run[-1] + 1, 2), dtype=drawing.dtype)
    run_end[run] = absolute  # the last write per run wins: its end position
    out = drawing[~drop].copy()
    out[:, :2] = np.diff(run_end, axis=0, prepend=np.zeros((1, 2), dtype=drawing.dtype))
    return out


@dataclass
class StrokeBatch:
    inputs: torch.Tensor  # (T, B, 5) S0, then each drawing's points; padding after
    targets: torch.Tensor  # (T, B, 5) the points, then end-of-sketch; padding after
    lengths: torch.Tensor  # (B,) N + 1: real target steps, the end-of-sketch step included
    labels: torch.Tensor  # (B,) class index


def shard_strokes(batch: StrokeBatch, group) -> StrokeBatch:
    """One torchrun rank's drawings of a batch, still padded to the whole batch's length, so the
    ranks' losses average to the whole batch's (``training_loss`` divides by B x T)."""
    part = distributed.shard(len(batch.lengths), group)
    return StrokeBatch(batch.inputs[:, part], batch.targets[:, part], batch.lengths[part], batch.labels[part])


def stroke5_batch(drawings: list[np.ndarray], labels) -> StrokeBatch:
    """Pad normalised stroke-3 drawings to the longest one in this batch, as stroke-5."""
    lengths = np.array([len(d) for d in drawings])
    steps = int(lengths.max()) + 1
    full = np.zeros((steps + 1, len(drawings), 5), dtype=np.float32)
    full[:] = END
    full[0] = S0
    for b, d in enumerate(drawings):
        full[1 : len(d) + 1, b] = stroke5(d)
    full = torch.from_numpy(full)
    return StrokeBatch(full[:-1], full[1:], torch.from_numpy(lengths + 1), torch.as_tensor(np.asarray(labels)))


def cap_length(sketches: SketchSet, max_len: int, overlong: str) -> tuple[SketchSet, int]:
    """Drawings longer than ``max_len`` points are dropped, or cut with the pen lifted at the cut
    (``overlong`` = "drop" | "truncate"). Returns the capped set and how many were affected."""
    if overlong not in ("drop", "truncate"):
        raise ValueError(f"overlong must be 'drop' or 'truncate', got {overlong!r}")
    long = [i for i, d in enumerate(sketches.drawings) if len(d) > max_len]
    if not long:
        return sketches, 0
    if overlong == "drop":
        keep = np.setdiff1d(np.arange(len(sketches)), long)
        return SketchSet([sketches.drawings[i] for i in keep], sketches.labels[keep],
                         [sketches.key_ids[i] for i in keep]), len(long)
    drawings = list(sketches.drawings)
    for i in long:
        drawings[i] = drawings[i][:max_len].copy()
        drawings[i][-1, 2] = 1.0
    return SketchSet(drawings, sketches.labels, sketches.key_ids), len(long)


class Batcher:
    """Training batches as a pure function of the step number (so a resumed run sees the same
    data): a seeded order per epoch, optional length buckets, augmentation seeded by step."""

    BUCKET_BATCHES = 20  # sort this many batches' worth of drawings at a time by length

    def __init__(
        self,
        sketches: SketchSet,
        scale: float,
        batch_size: int = 100,  # Magenta's default
        bucket: bool = True,  # batch drawings of similar length: far less padding per epoch
        random_scale: float = 0.15,  # stretch x and y independently by up to +-15% (Magenta)
        drop_prob: float = 0.1,  # point dropping probability (Magenta's augment_stroke_prob)
        augment: bool = True,
        seed: int = 0,
    ):
        if len(sketches) == 0:
            raise ValueError("no drawings to batch")
        self.drawings = [to_model_units(d, scale) for d in sketches.drawings]
        self.labels = sketches.labels
        self.batch_size = min(batch_size, len(self.drawings))
        self.bucket, self.augment, self.seed = bucket, augment, seed
        self.random_scale, self.drop_prob = random_scale, drop_prob
        self.batches_per_epoch = math.ceil(len(self.drawings) / self.batch_size)
        self._epoch, self._batches = None, None

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        """The index lists of one epoch's batches, in the order they are used."""
        rng = np.random.default_rng((self.seed, epoch))
        order = rng.permutation(len(self.drawings))
        size = self.batch_size
        if self.bucket:
            lengths = np.array([len(d) for d in self.drawings])
            group = size * self.BUCKET_BATCHES
            order = np.concatenate([g[np.argsort(lengths[g], kind="stable")]
                                    for g in np.split(order, range(group, len(order), group))])
        batches = np.split(order, range(size, len(order), size))
        if self.bucket:  # so the lengths do not rise and fall in step with the groups
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def batch(self, step: int) -> StrokeBatch:
        epoch, index = divmod(step, self.batches_per_epoch)
        if epoch != self._epoch:
            self._epoch, self._batches = epoch, self.epoch_batches(epoch)
        chosen = self._batches[index]
        drawings = [self.drawings[i] for i in chosen]
        if self.augment:
            rng = np.random.default_rng((self.seed, step, 1))
            stretch = rng.uniform(1 - self.random_scale, 1 + self.random_scale, (len(chosen), 2)).astype(np.float32)
            drawings = [drop_points(d, self.drop_prob, rng) * np.append(s, np.float32(1.0))
                        for d, s in zip(drawings, stretch)]
        return stroke5_batch(drawings, self.labels[chosen])


def evaluation_batches(sketches: SketchSet, scale: float, batch_size: int = 100):
    """Every drawing once, unaugmented, in batches of similar length (less padding)."""
    drawings = [to_model_units(d, scale) for d in sketches.drawings]
    order = np.argsort([len(d) for d in drawings], kind="stable")
    for chunk in np.split(order, range(batch_size, len(order), batch_size)):
        yield stroke5_batch([drawings[i] for i in chunk], sketches.labels[chunk])


def padding_ratio(batches) -> float:
    """Padded steps per real step over a sequence of batches."""
    real = padded = 0
    for b in batches:
        n = int(b.lengths.sum())
        real += n
        padded += b.targets.shape[0] * b.targets.shape[1] - n
    return padded / real
