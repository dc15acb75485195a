"""Line charts as SVG (learning curves, gradient norms), drawn with svgwrite."""

import math
from dataclasses import dataclass
from pathlib import Path

import svgwrite

from sketchrnn.core.checkpoint import atomic_file

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"]


@dataclass
class Series:
    label: str
    xs: list[float]
    ys: list[float]
    color: str | None = None  # None: the next palette colour
    dashed: bool = False


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = min((m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw), default=raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def line_chart(
    series: list[Series], path: str | Path, title: str, xlabel: str, ylabel: str,
    log_y: bool = False, size: tuple[int, int] = (720, 440),
) -> Path:
    """Write a chart of ``series`` to ``path``; with ``log_y`` non-positive values are dropped."""
    width, height = size
    left, right, top, bottom = 70, 170, 40, 50
    pw, ph = width - left - right, height - top - bottom

    def ty(v):
        return math.log10(v) if log_y else v

    points = [(x, ty(y)) for s in series for x, y in zip(s.xs, s.ys) if not log_y or y > 0]
    if not points:
        raise ValueError(f"nothing to plot in {path}: every series is empty")
    x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
    y0, y1 = min(p[1] for p in points), max(p[1] for p in points)
    if log_y:
        y0, y1 = math.floor(y0), math.ceil(y1)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)

    def px(x):
        return left + (x - x0) / (x1 - x0) * pw

    def py(y):
        return top + ph - (y - y0) / (y1 - y0) * ph

    dwg = svgwrite.Drawing(str(path), size=(width, height), profile="full")
    dwg.add(dwg.rect((0, 0), (width, height), fill="white"))
    font = dict(font_family="sans-serif", font_size=12)
    dwg.add(dwg.text(title, insert=(left, 22), font_size=15, font_family="sans-serif"))
    dwg.add(dwg.rect((left, top), (pw, ph), fill="none", stroke="#888"))
    for x in _ticks(x0, x1):
        dwg.add(dwg.line((px(x), top + ph), (px(x), top + ph + 5), stroke="#888"))
        dwg.add(dwg.text(f"{x:g}", insert=(px(x), top + ph + 18), text_anchor="middle", **font))
    y_ticks = range(int(y0), int(y1) + 1) if log_y else _ticks(y0, y1)
    for y in y_ticks:
        dwg.add(dwg.line((left, py(y)), (left + pw, py(y)), stroke="#eee"))
        label = f"1e{int(y)}" if log_y else f"{y:g}"
        dwg.add(dwg.text(label, insert=(left - 6, py(y) + 4), text_anchor="end", **font))
    dwg.add(dwg.text(xlabel, insert=(left + pw / 2, height - 12), text_anchor="middle", **font))
    dwg.add(dwg.text(ylabel, insert=(16, top + ph / 2), text_anchor="middle",
                     transform=f"rotate(-90 16 {top + ph / 2})", **font))
    for i, s in enumerate(series):
        color = s.color or PALETTE[i % len(PALETTE)]
        pts = [(px(x), py(ty(y))) for x, y in zip(s.xs, s.ys) if not log_y or y > 0]
        if pts:
            dwg.add(dwg.polyline(pts, fill="none", stroke=color, stroke_width=2,
                                 stroke_dasharray="6,4" if s.dashed else "none"))
        ly = top + 10 + 18 * i
        dwg.add(dwg.line((left + pw + 12, ly), (left + pw + 36, ly), stroke=color, stroke_width=2,
                         stroke_dasharray="6,4" if s.dashed else "none"))
        dwg.add(dwg.text(s.label, insert=(left + pw + 42, ly + 4), **font))
    with atomic_file(path, "w") as f:
        dwg.write(f)
    return Path(path)
