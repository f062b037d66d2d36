"""A cumulative DVH plot drawn in the terminal with braille dots (2×4 per cell), one colour per ROI.

Why our own and not a plotting library: the plot must read the same at 80×24 over SSH as at 120×40, render
deterministically (snapshot tests) and cost nothing to redraw when an ROI is toggled or the cursor moves; a
hundred lines of NumPy-free drawing do that without another dependency. ``render_lines`` is pure, so the drawing
is tested without a running app.
"""

from __future__ import annotations

from typing import Sequence

from rich.text import Text
from textual.widget import Widget

from ...engine.metrics.views import DvhCurve

COLOURS = ("red", "green", "yellow", "dodger_blue1", "magenta", "cyan", "orange1", "bright_green", "orchid",
           "wheat1", "deep_sky_blue1", "salmon1")
_BITS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))  # [row within cell][column within cell]
Y_LABEL = 4  # "100" + tick


def colour(index: int) -> str:
    return COLOURS[index % len(COLOURS)]


def _interp(x: float, xs: Sequence[float], ys: Sequence[float]) -> float:
    """Linear interpolation on increasing ``xs`` (beyond the ends: the end values; past the last dose: 0)."""
    if not xs or x > xs[-1]:
        return 0.0
    if x <= xs[0]:
        return ys[0]
    lo, hi = 0, len(xs) - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if xs[mid] <= x:
            lo = mid
        else:
            hi = mid
    span = xs[hi] - xs[lo]
    f = (x - xs[lo]) / span if span > 0 else 0.0
    return ys[lo] + f * (ys[hi] - ys[lo])


def dose_range(curves: Sequence[DvhCurve]) -> float:
    top = max((c.max_gy or (c.doses[-1] if c.doses else 0.0) for c in curves), default=0.0)
    return top * 1.05 if top > 0 else 1.0


def render_lines(curves: Sequence[tuple[int, DvhCurve]], width: int, height: int, x_max: float,
                 cursor_gy: float | None = None) -> list[Text]:
    """The plot as ``height`` lines of ``width`` cells; ``curves`` are (colour index, curve) pairs to draw."""
    cols, rows = max(1, width - Y_LABEL - 1), max(1, height - 2)
    px, py = cols * 2, rows * 4
    dots = [[0] * cols for _ in range(rows)]
    owner: list[list[int | None]] = [[None] * cols for _ in range(rows)]

    def dot(x: int, y: int, who: int) -> None:
        r, c = y // 4, x // 2
        dots[r][c] |= _BITS[y % 4][x % 2]
        owner[r][c] = who

    for who, curve in curves:
        previous = None
        for x in range(px):
            v = _interp(x_max * x / max(1, px - 1), curve.doses, curve.volumes)
            y = round((1 - min(max(v, 0.0), 100.0) / 100.0) * (py - 1))
            lo, hi = (y, y) if previous is None else (min(previous, y), max(previous, y))
            for yy in range(lo, hi + 1):  # a steep fall stays a connected line
                dot(x, yy, who)
            previous = y
    cursor_col = None
    if cursor_gy is not None and 0 <= cursor_gy <= x_max:
        cursor_col = min(cols - 1, int(cursor_gy / x_max * (px - 1)) // 2)
    lines = []
    for r in range(rows):
        label = {0: "100", rows // 2: " 50", rows - 1: "  0"}.get(r, "")
        line = Text(f"{label:>3s}" + ("┤" if label else "│"), style="dim")
        for c in range(cols):
            if dots[r][c]:
                drawn_by = owner[r][c]
                line.append(chr(0x2800 + dots[r][c]), style=colour(drawn_by) if drawn_by is not None else "")
            elif c == cursor_col:
                line.append("┊", style="bold")
            else:
                line.append(" ")
        lines.append(line)
    axis = Text("   └" + "─" * cols, style="dim")
    ticks = [f"{x_max * k / 4:.3g}" for k in range(5)]
    scale = [" "] * max(1, width - 3)
    for k, t in enumerate(ticks):
        at = min(Y_LABEL + round(k * (cols - 1) / 4), len(scale) - len(t))
        for i, ch in enumerate(t):
            if 0 <= at + i < len(scale):
                scale[at + i] = ch
    lines += [axis, Text("".join(scale) + " Gy", style="dim")]
    return lines


class DvhPlot(Widget):
    """The selected plan's DVHs; ``show(curves, visible, cursor_gy)`` redraws."""

    DEFAULT_CSS = "DvhPlot { height: 1fr; min-height: 6; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.curves: list[DvhCurve] = []
        self.rois: set[str] = set()
        self.cursor_gy: float | None = None

    def show(self, curves: list[DvhCurve], visible: set[str], cursor_gy: float | None) -> None:
        self.curves, self.rois, self.cursor_gy = curves, visible, cursor_gy
        self.refresh()

    @property
    def x_max(self) -> float:
        return dose_range(self.curves)

    def render(self) -> Text:
        if not self.curves:
            return Text("no DVH for this plan (metrics not computed yet, or no dose / structures)", style="dim")
        drawn = [(i, c) for i, c in enumerate(self.curves) if c.roi in self.rois]
        lines = render_lines(drawn, self.size.width, self.size.height, self.x_max, self.cursor_gy)
        return Text("\n").join(lines)
