"""Drawings to SVG (svgwrite): one drawing or a grid, scaled to fit, strokes as paths; where a
model continued a person's drawing, its strokes get their own colour."""

import math
from pathlib import Path

import numpy as np
import svgwrite

from sketchrnn.core.checkpoint import atomic_file
from sketchrnn.strokes import stroke3_to_polylines

USER_COLOR = "#222222"
MODEL_COLOR = "#d62728"


def _segments(s3: np.ndarray, generated_from: int | None):
    """(polyline, colour) per stroke piece; a stroke that crosses ``generated_from`` is cut
    there, the model's part starting from the last user point so the line stays joined."""
    absolute = np.cumsum(s3[:, :2], axis=0)
    cut = len(s3) if generated_from is None else generated_from
    index = 0
    for stroke in stroke3_to_polylines(s3):
        first, last = index, index + len(stroke)
        if last <= cut:
            yield stroke, USER_COLOR
        elif first >= cut:
            yield stroke, MODEL_COLOR
        else:
            yield absolute[first:cut], USER_COLOR
            yield absolute[cut - 1 : last], MODEL_COLOR
        index = last


def _draw(dwg, group, s3: np.ndarray, box: tuple[float, float, float, float], generated_from: int | None) -> None:
    if len(s3) == 0:
        return  # a model may end a drawing before its first point: an empty cell
    x0, y0, size, margin = box
    absolute = np.cumsum(s3[:, :2], axis=0)
    low, high = absolute.min(axis=0), absolute.max(axis=0)
    extent = float((high - low).max()) or 1.0
    scale = (size - 2 * margin) / extent
    offset = np.array([x0, y0]) + margin + ((size - 2 * margin) - (high - low) * scale) / 2
    for points, color in _segments(s3, generated_from):
        if len(points) == 0:
            continue
        xy = (points - low) * scale + offset
        if len(xy) == 1:
            xy = np.vstack([xy, xy])  # a lone point still shows as a dot
        d = "M " + " L ".join(f"{x:.1f} {y:.1f}" for x, y in xy)
        group.add(dwg.path(d=d, stroke=color, fill="none", stroke_width=2,
                           stroke_linecap="round", stroke_linejoin="round"))


def render_grid(
    drawings: list[np.ndarray],
    path: str | Path,
    columns: int | None = None,
    cell: int = 160,
    titles: list[str] | None = None,
    generated_from: list[int | None] | None = None,
) -> Path:
    """Write stroke-3 drawings to an SVG grid. ``generated_from[i]`` is the index of the first
    model-made point of drawing i (None: all drawn by a person)."""
    if not drawings:
        raise ValueError("nothing to render")
    columns = columns or math.ceil(math.sqrt(len(drawings)))
    rows = math.ceil(len(drawings) / columns)
    title_height = 16 if titles else 0
    width, height = columns * cell, rows * (cell + title_height)
    dwg = svgwrite.Drawing(str(path), size=(width, height), profile="full")
    dwg.add(dwg.rect((0, 0), (width, height), fill="white"))
    for i, s3 in enumerate(drawings):
        r, c = divmod(i, columns)
        x0, y0 = c * cell, r * (cell + title_height)
        group = dwg.g()
        _draw(dwg, group, s3, (x0, y0 + title_height, cell, 8), generated_from[i] if generated_from else None)
        if titles:
            group.add(dwg.text(titles[i], insert=(x0 + cell / 2, y0 + 13), text_anchor="middle",
                               font_size=11, font_family="sans-serif", fill="#555"))
        dwg.add(group)
    with atomic_file(path, "w") as f:
        dwg.write(f)
    return Path(path)
