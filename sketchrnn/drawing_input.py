"""A person's strokes -> what a model was trained on: simplified as Google simplified the Quick,
Draw! drawings (in the drawing's own 0-255 frame), cut to what the model can take, and read at a
scale (drawing units per model unit)."""

import weakref

import numpy as np

from sketchrnn.model import SketchRNN
from sketchrnn.sampler import Settings, sample
from sketchrnn.strokes import RDP_EPSILON, polylines_to_stroke3, rdp

FRAME = 255.0  # Quick, Draw! simplified drawings: the longer side scaled to 0-255


def drawing_frame(polylines: list[np.ndarray]) -> tuple[np.ndarray, float]:
    """The frame Google simplified drawings in: (lowest corner, drawing units per frame unit),
    where the longer side of the drawing counts 255 frame units."""
    everything = np.concatenate(polylines)
    low = everything.min(0)
    return low, float((everything - low).max()) / FRAME


def simplify_strokes(polylines: list[np.ndarray], low: np.ndarray, unit: float,
                     epsilon: float = RDP_EPSILON) -> list[np.ndarray]:
    """Google's simplification in a given frame: Ramer-Douglas-Peucker at ``epsilon`` frame units,
    rounded to the frame's grid; back in drawing units. Google resamples at 1 unit first; on mouse
    input (a point every few pixels) that only adds points on straight segments, which RDP drops
    again, and costs 10x the time (35 ms for 2,000 points, on the server's event loop)."""
    polylines = [p if len(p) > 1 else np.repeat(p, 2, 0) for p in polylines]  # a tap is a dot
    if unit <= 0:  # the whole drawing is one dot
        return [p[:2] for p in polylines]
    return [np.round(rdp((p - low) / unit, epsilon)) * unit + low for p in polylines]


def typical_extent(model: SketchRNN) -> float:
    """How many of its own units a model's drawings span: the median longer side of 64 drawings it
    samples at temperature 1 (seed 0), computed once per model. Sketch-RNN's unit is the std of
    its training offsets; drawings span ~13 of them (aaron_sheep: 239 / 18.5)."""
    if model not in _EXTENTS:
        drawings = sample(model, 1.0, 64, Settings(temperature=1.0, seed=0))
        _EXTENTS[model] = float(np.median([np.ptp(np.cumsum(d[:, :2], 0), 0).max() for d in drawings if len(d) > 2]))
    return _EXTENTS[model]


_EXTENTS: "weakref.WeakKeyDictionary[SketchRNN, float]" = weakref.WeakKeyDictionary()


def remember_extent(model: SketchRNN, extent: float) -> None:
    """A model's typical extent learned earlier (the catalog keeps them): start-up need not sample."""
    _EXTENTS[model] = extent


def prepare_strokes(polylines: list[np.ndarray], max_len: int, scale: float | None = None,
                    fallback_scale: float = 1.0, extent: float | None = None,
                    where: str = "strokes") -> tuple[np.ndarray, float]:
    """Absolute polylines as drawn (every mouse point, in any units) -> (stroke-3 prefix, scale).

    Simplified as Google simplified the training drawings, in the drawing's own frame (see
    ``simplify_strokes``): a mouse sends 5-14x more points than that, and a model fed dense
    strokes reads its own step size as tiny and draws tangles. Past ``max_len`` points (the
    longest drawing the model trained on) the tolerance doubles until it fits, then the oldest
    points go.

    The scale (drawing units per model unit) is ``scale`` if given. Else two readings of it, and
    their geometric mean where both exist: the std of the simplified offsets (the model's unit is
    the std of its training offsets; it runs large on a few long straight strokes), and the
    drawing's longer side over ``extent``, what the model's own drawings span (``typical_extent``;
    it runs small on a part of a drawing). Together they beat either alone on real half-drawings
    (BENCHMARKS.md: best-of-8 Chamfer 0.073-0.095 against 0.063-0.105 for the std alone, every
    size 0.75-1.27x). A dot falls back on ``fallback_scale``. A drawing that is no drawing
    (offsets beyond any screen) raises a StrokeFormatError naming ``where``."""
    low, unit = drawing_frame(polylines)
    epsilon = RDP_EPSILON
    prefix = polylines_to_stroke3(simplify_strokes(polylines, low, unit, epsilon), where)
    while len(prefix) > max_len and epsilon < 8 * RDP_EPSILON:
        epsilon *= 2
        prefix = polylines_to_stroke3(simplify_strokes(polylines, low, unit, epsilon), where)
    prefix = prefix[-max_len:]
    if scale is None:
        offsets = prefix[1:, :2]
        readings = [float(offsets.std()) if len(offsets) >= 2 else 0.0]
        if extent is not None:
            readings.append(unit * FRAME / extent)
        readings = [r for r in readings if r > 0]
        scale = float(np.exp(np.mean(np.log(readings)))) if readings else fallback_scale
    return prefix, scale


def prepare_for(loaded, polylines: list[np.ndarray], scale: float | None = None) -> tuple[np.ndarray, float]:
    """``prepare_strokes`` for one loaded model (a ``checkpoints.LoadedModel``): its longest
    drawing, its scale factor for a dot, its typical extent. What the server, ``sketchrnn complete``
    and the model guess all read a person's drawing with."""
    return prepare_strokes(polylines, loaded.max_len, scale, loaded.scale_factor, typical_extent(loaded.model))
