"""Stroke formats and the files they come in: Sketch-RNN ``.npz``, Quick, Draw! ndjson (simplified
and raw), and absolute polylines (the browser's form); Google's simplification of raw drawings.

A drawing inside the package is always stroke-3: a float32 array (N, 3) of [dx, dy, p], where p = 1
when the pen lifts after the point. Read from polylines or ndjson, a drawing starts at the origin:
its first offset is (0, 0).
"""

import json
import math
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sketchrnn.core.checkpoint import atomic_file

# No screen is this large: a coordinate or offset beyond it is a corrupt file or a forged
# message, not a drawing (files and the server's messages alike).
MAX_COORDINATE = 1e6
RDP_EPSILON = 2.0  # Google's simplification tolerance, in pixels of the 0-255 frame
SPLITS = ("train", "valid", "test")


class StrokeFormatError(ValueError):
    """A file that cannot be read as drawings; the message names the file, line or index."""


@dataclass
class Record:
    """One drawing read from a file, with what the file said about it."""

    strokes: np.ndarray  # stroke-3, float32 (N, 3)
    key_id: str | None = None  # Quick, Draw!'s id, kept so conversions can carry it
    word: str | None = None  # Quick, Draw!'s class name for the drawing
    split: str | None = None  # train/valid/test where the file says (our conversions do), else None


def check_stroke3(s3: np.ndarray, where: str) -> np.ndarray:
    """Return ``s3`` as float32 (N, 3) or raise naming ``where`` and the problem."""
    s3 = np.asarray(s3)
    if s3.ndim != 2 or s3.shape[1] != 3:
        raise StrokeFormatError(f"{where}: expected an (N, 3) stroke-3 array, got shape {s3.shape}")
    if len(s3) == 0:
        raise StrokeFormatError(f"{where}: empty drawing")
    s3 = s3.astype(np.float32)
    if not np.isfinite(s3).all():
        raise StrokeFormatError(f"{where}: NaN or infinite values")
    worst = float(np.abs(s3[:, :2]).max())
    if worst > MAX_COORDINATE:
        raise StrokeFormatError(f"{where}: offset {worst:g} beyond the limit {MAX_COORDINATE:g}")
    if not np.isin(s3[:, 2], (0.0, 1.0)).all():
        raise StrokeFormatError(f"{where}: pen state must be 0 or 1")
    return s3


def polylines_to_stroke3(strokes, where: str = "drawing") -> np.ndarray:
    """Absolute polylines [[[x, y], ...], ...] -> stroke-3 starting at the origin."""
    if len(strokes) == 0:
        raise StrokeFormatError(f"{where}: empty drawing")
    parts = []
    for i, stroke in enumerate(strokes):
        try:
            points = np.asarray(stroke, dtype=np.float64)
        except (TypeError, ValueError):  # text, objects or ragged lists where numbers belong
            points = np.empty(0)
        if points.ndim != 2 or points.shape[1] != 2:
            raise StrokeFormatError(f"{where}: stroke {i} is not a list of [x, y] points")
        if len(points) == 0:  # one point is a dot: a stroke like any other
            raise StrokeFormatError(f"{where}: stroke {i} has no points")
        parts.append(np.column_stack([points, np.zeros(len(points))]))
        parts[-1][-1, 2] = 1.0
    absolute = np.concatenate(parts)
    s3 = absolute.copy()
    s3[1:, :2] = np.diff(absolute[:, :2], axis=0)
    s3[0, :2] = 0.0  # start at the origin
    return check_stroke3(s3, where)


def stroke3_to_polylines(s3: np.ndarray) -> list[np.ndarray]:
    """stroke-3 -> absolute polylines, each an (n, 2) array; positions are the running sums."""
    absolute = np.cumsum(s3[:, :2], axis=0)
    ends = np.flatnonzero(s3[:, 2] == 1) + 1
    if len(ends) == 0 or ends[-1] != len(s3):
        ends = np.append(ends, len(s3))  # a drawing cut off mid-stroke still ends its stroke
    return [p for p in np.split(absolute, ends[:-1]) if len(p)]


# --- Google's simplification of raw Quick, Draw! drawings ------------------------------------


def resample(points: np.ndarray, spacing: float = 1.0) -> np.ndarray:
    """Points every ``spacing`` along the polyline, keeping both ends."""
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    if arc[-1] == 0:
        return points[:1].repeat(2, axis=0)
    at = np.append(np.arange(0.0, arc[-1], spacing), arc[-1])
    return np.column_stack([np.interp(at, arc, points[:, 0]), np.interp(at, arc, points[:, 1])])


def rdp(points: np.ndarray, epsilon: float = RDP_EPSILON) -> np.ndarray:
    """Ramer-Douglas-Peucker: keep the ends, and recursively the farthest point beyond epsilon."""
    keep = np.zeros(len(points), dtype=bool)
    keep[[0, -1]] = True
    stack = [(0, len(points) - 1)]
    while stack:
        a, b = stack.pop()
        if b - a < 2:
            continue
        start, end = points[a], points[b]
        inner = points[a + 1 : b]
        chord = end - start
        norm = np.hypot(*chord)
        if norm == 0:
            dist = np.linalg.norm(inner - start, axis=1)
        else:  # perpendicular distance to the chord
            dist = np.abs(chord[0] * (inner[:, 1] - start[1]) - chord[1] * (inner[:, 0] - start[0])) / norm
        i = int(np.argmax(dist))
        if dist[i] > epsilon:
            keep[a + 1 + i] = True
            stack += [(a, a + 1 + i), (a + 1 + i, b)]
    return points[keep]


def simplify_raw(strokes: list[np.ndarray]) -> list[np.ndarray]:
    """Google's pipeline for raw drawings: align to a minimum of 0, scale uniformly so the maximum
    is 255, resample each stroke at 1-pixel spacing, RDP with epsilon 2.0, round."""
    everything = np.concatenate(strokes)
    low = everything.min(axis=0)
    extent = float((everything - low).max())
    scale = 255.0 / extent if extent > 0 else 1.0
    return [np.round(rdp(resample((s - low) * scale))) for s in strokes]


# --- Files -------------------------------------------------------------------------------------


class _Refused(pickle.UnpicklingError):
    """A pickle that names something other than numpy's array rebuilding (not a damaged one)."""


class _ArraysOnly(pickle.Unpickler):
    """Unpickles numpy arrays and nothing else. A Sketch-RNN .npz keeps its ragged drawings as a
    pickled object array, and a pickle may name any function to call on load: only numpy's own
    array rebuilding is let through."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise _Refused(f"it holds a pickled {module}.{name}, not only numpy arrays; "
                                     "loading it could run code")


def _read_npy(archive: zipfile.ZipFile, member: str) -> np.ndarray:
    with archive.open(member) as f:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(f)
        if dtype.hasobject:
            return _ArraysOnly(f, encoding="latin1").load()
        # A forged header can claim any size: check it against the bytes there before allocating.
        claimed, held = math.prod(shape) * dtype.itemsize, archive.getinfo(member).file_size - f.tell()
        if claimed > held:
            raise ValueError(f"{member}'s header claims a {'x'.join(map(str, shape))} {dtype} array "
                             f"({claimed} bytes) but holds {held} bytes")
    with archive.open(member) as f:
        return np.lib.format.read_array(f, allow_pickle=False)


def read_npz(path: str | Path) -> dict[str, list[np.ndarray]]:
    """A Sketch-RNN .npz: object arrays of stroke-3 under train/valid/test (int16 or float).
    Read without running any pickled code (see ``_ArraysOnly``)."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            found = {name.removesuffix(".npy") for name in archive.namelist()}
            missing = [s for s in SPLITS if s not in found]
            if missing:
                raise StrokeFormatError(f"{path}: missing split(s) {', '.join(missing)}; it holds {sorted(found)}")
            return {s: list(_read_npy(archive, f"{s}.npy")) for s in SPLITS}
    except _Refused as e:
        raise StrokeFormatError(f"{path}: refused: {e}") from None
    except (zipfile.BadZipFile, pickle.UnpicklingError, OSError, ValueError, EOFError, TypeError) as e:
        raise StrokeFormatError(f"{path}: not a readable Sketch-RNN .npz ({type(e).__name__}: {e})") from None


def write_npz(path: str | Path, splits: dict[str, list[np.ndarray]]) -> None:
    """Write stroke-3 splits as Sketch-RNN does: int16 when every value is whole, else float32."""
    def pack(drawings):
        whole = all(np.array_equal(d, np.round(d)) and np.abs(d).max() < 32768 for d in drawings)
        array = np.empty(len(drawings), dtype=object)
        array[:] = [d.astype(np.int16 if whole else np.float32) for d in drawings]
        return array

    with atomic_file(path) as f:
        np.savez_compressed(f, **{s: pack(splits.get(s, [])) for s in SPLITS})


def parse_ndjson_line(line: str, where: str, simplify: bool = True) -> Record:
    """One Quick, Draw! line, simplified ([[x...], [y...]] per stroke) or raw ([x, y, t])."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise StrokeFormatError(f"{where}: not JSON ({e.msg} at column {e.colno})") from None
    except ValueError as e:  # an integer of over 4,300 digits
        raise StrokeFormatError(f"{where}: not usable JSON ({e})") from None
    except RecursionError:
        raise StrokeFormatError(f"{where}: JSON nested too deeply to be a drawing") from None
    if not isinstance(obj, dict) or "drawing" not in obj:
        raise StrokeFormatError(f"{where}: no 'drawing' field")
    drawing = obj["drawing"]
    if not isinstance(drawing, list) or not drawing:
        raise StrokeFormatError(f"{where}: empty drawing")
    strokes, raw = [], False
    for i, stroke in enumerate(drawing):
        if not isinstance(stroke, list) or len(stroke) not in (2, 3):
            raise StrokeFormatError(f"{where}: stroke {i} must be [[x...], [y...]] or [[x...], [y...], [t...]]")
        raw = raw or len(stroke) == 3
        xs, ys = stroke[0], stroke[1]
        if not isinstance(xs, list) or not isinstance(ys, list) or len(xs) != len(ys):
            raise StrokeFormatError(f"{where}: stroke {i} has x and y lists of different lengths")
        try:
            points = np.array([xs, ys], dtype=np.float64).T
        except (TypeError, ValueError):
            raise StrokeFormatError(f"{where}: stroke {i} holds non-numeric coordinates") from None
        if not np.isfinite(points).all():
            raise StrokeFormatError(f"{where}: stroke {i} has NaN or infinite values")
        if len(points) and np.abs(points).max() > MAX_COORDINATE:
            raise StrokeFormatError(f"{where}: stroke {i} has a coordinate beyond {MAX_COORDINATE:g}")
        strokes.append(points)
    if raw and simplify:
        strokes = simplify_raw(strokes)
    key, split = obj.get("key_id"), obj.get("split")
    if split is not None and split not in SPLITS:
        raise StrokeFormatError(f"{where}: split {split!r} is not one of {', '.join(SPLITS)}")
    return Record(polylines_to_stroke3(strokes, where), None if key is None else str(key), obj.get("word"), split)


def read_ndjson(path: str | Path, simplify: bool = True, skip_bad: bool = False) -> tuple[list[Record], int]:
    """All drawings of an ndjson file, and how many bad lines were skipped (with ``skip_bad``)."""
    path = Path(path)
    records, skipped = [], 0
    try:
        with path.open(encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    records.append(parse_ndjson_line(line, f"{path}:{number}", simplify))
                except StrokeFormatError:
                    if not skip_bad:
                        raise
                    skipped += 1
    except UnicodeDecodeError as e:
        raise StrokeFormatError(f"{path}: not a text ndjson file ({e.reason} at byte {e.start})") from None
    if not records:
        raise StrokeFormatError(f"{path}: no drawings")
    return records, skipped


def write_ndjson(path: str | Path, records: list[Record], word: str | None = None) -> None:
    """Quick, Draw! simplified form: absolute integer coordinates aligned to a minimum of 0; a
    record's split, where known, as a "split" field that reading honours."""
    with atomic_file(path, "w") as f:
        for r in records:
            polylines = stroke3_to_polylines(r.strokes)
            low = np.concatenate(polylines).min(axis=0)
            drawing = [[np.round(p[:, axis] - low[axis]).astype(int).tolist() for axis in (0, 1)] for p in polylines]
            obj = {"word": r.word or word}
            if r.key_id is not None:
                obj["key_id"] = r.key_id
            if r.split is not None:
                obj["split"] = r.split
            obj["drawing"] = drawing
            f.write(json.dumps(obj, separators=(",", ":")) + "\n")


def read_drawing(path: str | Path, index: int = 0) -> np.ndarray:
    """One drawing as stroke-3 from: an ndjson file (line ``index``, 0-based, among drawings), a
    JSON file of absolute polylines [[[x, y], ...], ...], a JSON file of stroke-3 rows, or the
    JSON file ``sketchrnn complete --json`` writes (its "input")."""
    path = Path(path)
    if not path.is_file():
        raise StrokeFormatError(f"{path}: {'a folder, not a file' if path.is_dir() else 'no such file'}")
    if path.name.endswith(".gen.json"):
        raise StrokeFormatError(f"{path}: a model file, not a drawing (--model takes it)")
    if path.suffix == ".ndjson":
        records, _ = read_ndjson(path)
        if not 0 <= index < len(records):
            raise StrokeFormatError(f"{path}: drawing {index} requested, the file holds {len(records)}")
        return records[index].strokes
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise StrokeFormatError(f"{path}: not JSON ({e})") from None
    if isinstance(obj, dict) and "input" in obj:  # what `sketchrnn complete --json` writes: its input
        obj = obj["input"]
    if isinstance(obj, dict) and "drawing" in obj:
        return parse_ndjson_line(json.dumps(obj), str(path)).strokes
    if (isinstance(obj, list) and obj
            and all(isinstance(r, list) and len(r) == 3 and not isinstance(r[0], list) for r in obj)):
        try:
            return check_stroke3(np.array(obj, dtype=np.float32), str(path))
        except (TypeError, ValueError) as e:
            if isinstance(e, StrokeFormatError):
                raise
            raise StrokeFormatError(f"{path}: stroke-3 rows [dx, dy, pen] must hold numbers") from None
    if not isinstance(obj, list):
        raise StrokeFormatError(f"{path}: expected polylines [[[x, y], ...], ...], stroke-3 rows or an ndjson "
                                "drawing object")
    return polylines_to_stroke3(obj, str(path))
