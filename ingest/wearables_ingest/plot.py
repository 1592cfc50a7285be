"""``status --plot``: the coverage as a heat map, participants × days, one panel per metric.

Pure: the SVG is written by hand as text (no plotting library to install), and
the caller writes it to a file. Each cell is coloured by the share of the rows
expected that day: red without a row, amber shades for a partial day (darker is
fewer), green for a complete one, grey before the participant's first row. A
metric with no fixed count is green or red.

The picture stays within MAX_H pixels and about 2 MB whatever the study's size:
when the participants do not all fit, it shows those who need attention most,
worst first, and one last row, "others", for the rest.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from xml.sax.saxutils import escape, quoteattr

from wearables_ingest.status import COMPLETE, MISSING, PARTIAL, Day, Status, attention

GREEN, RED, GREY = "#1a9850", "#d73027", "#e0e0e0"
AMBER_LOW, AMBER_HIGH = (0xe6, 0x55, 0x0d), (0xfe, 0xd9, 0x76)  # share near 0, near complete
FONT = "font-family='DejaVu Sans, Arial, Helvetica, sans-serif'"

MARGIN, TOP = 16, 66  # the picture's margin; the title and legend above the panels
SUBTITLE = 22  # below the legend, when the picture shows some of the participants
AXIS = 44  # left of each grid: the axis title "participant" and the participants' numbers
PANEL_TITLE, X_LABELS, PANEL_GAP = 22, 52, 18  # a panel: title, day labels below, gap after
ROW_H, GRID_H = 18, 72  # a participant's row at least, the rows together at least
OTHERS_GAP = 6  # space above the row "others"
MAX_GRID_W = 840  # the days share this width; each at most 28 px
MAX_W = 1200  # panels sit side by side while the picture stays this narrow
MIN_W = 800  # room for the title and the legend
MAX_H = 5000  # the picture's height at most: image viewers refuse far taller ones
MAX_CELLS = 9000  # rects at most (about 200 bytes each with its tooltip): about 2 MB

OTHERS = "others"  # the label of the row that stands for the participants not shown


@dataclass(frozen=True)
class Row:
    """A row of every panel: one participant, or the group "others"."""

    label: str
    participants: tuple[int, ...]

    @property
    def group(self) -> bool:
        return self.label == OTHERS


def colour(day: Day, complete_pct: float) -> str:
    """The cell's fill: red, an amber shade (darker: fewer rows) or green."""
    if day.status == MISSING:
        return RED
    if day.status == COMPLETE or day.share is None:
        return GREEN
    return amber(day.share * 100 / complete_pct)


def amber(f: float) -> str:
    """The amber shade ``f`` of the way (0 .. 1) from no row to a complete day."""
    f = max(0.0, min(1.0, f))
    rgb = (round(lo + (hi - lo) * f) for lo, hi in zip(AMBER_LOW, AMBER_HIGH, strict=True))
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _text(x: float, y: float, text: str, size: int = 11, anchor: str = "start",
          extra: str = "") -> str:
    return (f"<text x='{x:.1f}' y='{y:.1f}' font-size='{size}' text-anchor='{anchor}' "
            f"{FONT}{extra}>{escape(text)}</text>")


def _tooltip(d: Day) -> str:
    if d.expected is None:
        count = f"{d.rows:,} rows (no fixed count)"
    else:
        count = f"{d.rows:,} of {d.expected:,} rows ({100 * d.share:.0f}%)"
    return f"participant {d.participant}, {d.metric}, {d.day}: {count}, {d.status}"


def heatmap_svg(st: Status, max_height: int = MAX_H) -> str:
    """The whole picture as SVG text: a title, a legend, and one panel per metric."""
    metrics = sorted({d.metric for d in st.days})
    days = sorted({d.day for d in st.days})
    cell_w = max(2.0, min(28.0, MAX_GRID_W / max(1, len(days))))
    panel_w = AXIS + cell_w * len(days) + PANEL_GAP
    across = max(1, min(len(metrics), 3, int((MAX_W - 2 * MARGIN) // panel_w)))
    down = math.ceil(len(metrics) / across) if metrics else 0
    grid = _Grid(st, metrics, days, merge=cell_w < 6)
    rows, subtitle = choose_rows(st, fit(max_height, down), grid.cost,
                                 MAX_CELLS - len(days) * len(metrics))
    top = TOP + (SUBTITLE if subtitle else 0)
    panel_h = (PANEL_TITLE + _row_h(len(rows)) * len(rows) + X_LABELS + PANEL_GAP
               + (OTHERS_GAP if rows and rows[-1].group else 0))
    width = max(MIN_W, 2 * MARGIN + across * panel_w)
    height = top + panel_h * down + MARGIN
    pct = st.expectations.complete_pct

    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width:.0f}' "
           f"height='{height:.0f}' viewBox='0 0 {width:.0f} {height:.0f}'>",
           f"<rect width='{width:.0f}' height='{height:.0f}' fill='white'/>"]
    if st.first_day is None:
        title = "Coverage: no rows stored yet"
    else:
        title = (f"Coverage per participant and day, {st.first_day} to {st.last_day} "
                 f"({st.time_zone} days)")
    out.append(_text(MARGIN, 24, title, 15, extra=" font-weight='bold'"))
    out += _legend(MARGIN, 40, pct)
    if subtitle:
        out.append(_text(MARGIN, TOP + 8, subtitle, 12))
    for i, metric in enumerate(metrics):
        left = MARGIN + (i % across) * panel_w
        panel_top = top + (i // across) * panel_h
        out += _panel(st, grid, metric, rows, left, panel_top, cell_w)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def fit(max_height: int, down: int) -> int:
    """How many rows the panels (``down`` of them, one above the other) may have within
    ``max_height`` px."""
    per_panel = (max_height - TOP - SUBTITLE - MARGIN) / max(1, down)
    return max(2, int((per_panel - PANEL_TITLE - X_LABELS - PANEL_GAP - OTHERS_GAP) // ROW_H))


def choose_rows(st: Status, most: int, cost: Callable[[int], int],
                budget: int) -> tuple[list[Row], str | None]:
    """Every participant by number when ``most`` rows and ``budget`` cells hold them all;
    else those who need attention, worst first, while they fit (a row fewer, and the cells
    of one more), and "others" for the rest, with a subtitle saying so."""
    everyone = st.participants()
    if len(everyone) <= most and sum(map(cost, everyone)) <= budget:
        return [Row(str(p), (p,)) for p in everyone], None
    worst: list[int] = []
    for a in attention(st):
        if not a.needs_attention or len(worst) + 1 >= most:
            break
        budget -= cost(a.participant)
        if budget < 0:
            break
        worst.append(a.participant)
    shown = set(worst)
    rest = tuple(p for p in everyone if p not in shown)
    if worst:
        subtitle = (f"{len(everyone):,} participants: the {len(worst):,} who need attention "
                    f"most, worst first, then \u201cothers\u201d: the other {len(rest):,}, "
                    "each day their worst")
    else:  # none needs attention, or the first would not fit
        subtitle = (f"{len(everyone):,} participants in one row, \u201cothers\u201d, each "
                    "day their worst")
    return [*(Row(str(p), (p,)) for p in worst), Row(OTHERS, rest)], subtitle


@dataclass(frozen=True)
class Cell:
    """One rect of a row: ``span`` days from column ``col`` in one colour, and its tooltip."""

    col: int
    span: int
    fill: str
    tip: str
    run: str | None  # what a run of like days says ("complete"); None: never merged


class _Grid:
    """The cells of each row and metric, worked out once: for choosing the rows, then drawing.

    With ``merge`` (cells too narrow for white lines between them) a run of like days,
    complete, missing or before the first row, is one rect: a long period stays small.
    """

    def __init__(self, st: Status, metrics: list[str], days: list[date], merge: bool) -> None:
        self.st, self.days, self.merge, self.metrics = st, days, merge, metrics
        self.cells: dict[str, dict[tuple[int, date], Day]] = {m: {} for m in metrics}
        for d in st.days:
            self.cells[d.metric][(d.participant, d.day)] = d
        self.rated = {m: {p for p, _ in cells} for m, cells in self.cells.items()}
        self._rows: dict[tuple[int, str], list[Cell]] = {}
        self._group: dict[tuple[str, date], list[Day]] | None = None  # "others", once

    def cost(self, participant: int) -> int:
        """The rects a participant's row takes in all panels."""
        return sum(len(self.row(Row(str(participant), (participant,)), m))
                   for m in self.metrics)

    def row(self, row: Row, metric: str) -> list[Cell]:
        key = (-1 if row.group else row.participants[0], metric)
        if key not in self._rows:
            self._rows[key] = self._row(row, metric)
        return self._rows[key]

    def _row(self, row: Row, metric: str) -> list[Cell]:
        cells, out = self.cells[metric], []
        if row.group and self._group is None:
            self._group = _groups(self.st, set(row.participants))
        groups = self._group or {}
        for col, day in enumerate(self.days):
            if row.group:
                fill, tip, run = _group_cell(self.st, metric, day, len(row.participants),
                                             groups.get((metric, day)))
            else:
                fill, tip, run = _cell(self.st, metric, row.participants[0], day, cells,
                                       self.rated[metric])
            if fill is None:
                continue
            last = out[-1] if out else None
            if (self.merge and run is not None and last is not None and last.run == run
                    and last.fill == fill and last.col + last.span == col):
                first = self.days[last.col]
                out[-1] = Cell(last.col, last.span + 1, fill,
                               f"participant {row.label}, {metric}, {first}..{day}: {run}", run)
            else:
                out.append(Cell(col, 1, fill, tip, run))
        return out


def _panel(st: Status, grid: _Grid, metric: str, rows: list[Row], left: float, top: float,
           cell_w: float) -> list[str]:
    """One metric: its title, a row per participant (or group), a column per day, the labels."""
    days = grid.days
    expected = next(iter(grid.cells[metric].values())).expected
    per_day = ("no fixed count: green with rows, red without" if expected is None
               else f"{expected:,} row{'s' if expected != 1 else ''} expected a day")
    out = [_text(left, top + 15, f"{metric}  ·  {per_day}", 13, extra=" font-weight='bold'")]
    grid_left, grid_top = left + AXIS, top + PANEL_TITLE
    row_h = _row_h(len(rows))
    bottom = grid_top + row_h * len(rows) + (OTHERS_GAP if rows and rows[-1].group else 0)
    middle = (grid_top + bottom) / 2
    out.append(_text(left + 10, middle, "participant", 11, "middle",
                     extra=f" fill='#444' transform='rotate(-90 {left + 10:.1f} {middle:.1f})'"))
    gap = 1 if cell_w >= 6 else 0  # white lines between cells, where they leave room
    rects, labels = [f"<g stroke='white' stroke-width='{gap}'>"], []
    for i, row in enumerate(rows):
        y = grid_top + i * row_h + (OTHERS_GAP if row.group else 0)
        labels.append(_text(grid_left - 6, y + row_h / 2 + 4, row.label, 11, "end"))
        for c in grid.row(row, metric):
            rects.append(f"<rect x='{grid_left + c.col * cell_w:.1f}' y='{y:.1f}' "
                         f"width='{cell_w * c.span:.1f}' height='{row_h:.1f}' fill='{c.fill}'>"
                         f"<title>{escape(c.tip)}</title></rect>")
    out += [*rects, "</g>", *labels]
    every = math.ceil(40 / cell_w)  # a day's label ("01-14") needs about 40 px
    for col, day in enumerate(days):
        if (len(days) - 1 - col) % every:  # counted back from the newest day, which has one
            continue
        x, y = grid_left + (col + 0.5) * cell_w, bottom + 12
        turn = quoteattr(f"rotate(-45 {x:.1f} {y:.1f})")
        out.append(_text(x, y, day.strftime("%m-%d"), 10, "end", extra=f" transform={turn}"))
    out.append(_text(grid_left + cell_w * len(days) / 2, bottom + X_LABELS - 4,
                     f"day ({st.time_zone})", 11, "middle", extra=" fill='#444'"))
    return out


def _cell(st: Status, metric: str, participant: int, day: date,
          cells: dict[tuple[int, date], Day],
          rated: set[int]) -> tuple[str | None, str, str | None]:
    """One participant's day: its colour (None: no such metric for it), its tooltip, and what
    a run of such days says (None for a partial day, whose counts differ)."""
    d = cells.get((participant, day))
    if d is not None:
        return (colour(d, st.expectations.complete_pct), _tooltip(d),
                None if d.status == PARTIAL else d.status)
    if participant in rated and not st.started(participant, day):
        return (GREY, f"participant {participant}, {metric}, {day}: before its first row",
                "before its first row")
    return None, "", None


def _groups(st: Status, members: set[int]) -> dict[tuple[str, date], list[Day]]:
    """The group's days by metric and day, in one pass."""
    out: dict[tuple[str, date], list[Day]] = {}
    for d in st.days:
        if d.participant in members:
            out.setdefault((d.metric, d.day), []).append(d)
    return out


def _group_cell(st: Status, metric: str, day: date, members: int,
                found: list[Day] | None) -> tuple[str | None, str, None]:
    """A group's day: the worst of its participants' days, and how many are which."""
    if not found:
        return None, "", None
    counts = {COMPLETE: 0, PARTIAL: 0, MISSING: 0}
    for d in found:
        counts[d.status] += 1
    worst = (next((d for d in found if d.status == MISSING), None)
             or min((d for d in found if d.status == PARTIAL), default=found[0],
                    key=lambda d: d.share or 0))
    tip = (f"{members:,} other participants, {metric}, {day}: "
           f"{counts[COMPLETE]:,} complete, {counts[PARTIAL]:,} partial, "
           f"{counts[MISSING]:,} missing, {members - len(found):,} not started or "
           f"without {metric}")
    return colour(worst, st.expectations.complete_pct), tip, None


def _row_h(rows: int) -> float:
    """Rows tall enough for the axis title beside them, however few the participants."""
    return max(ROW_H, GRID_H / max(1, rows))


def _legend(x: float, y: float, complete_pct: float) -> list[str]:
    """Swatches: missing, the amber scale of partial days, complete, not started."""
    parts = [f"<rect x='{x}' y='{y}' width='14' height='12' fill='{RED}'/>",
             _text(x + 18, y + 10, "missing (no row)", 11)]
    x += 130
    steps = 8
    for i in range(steps):
        fill = amber((i + 0.5) / steps)
        parts.append(f"<rect x='{x + i * 10}' y='{y}' width='10' height='12' fill='{fill}'/>")
    parts.append(_text(x + steps * 10 + 4, y + 10,
                       f"partial: 0% to {complete_pct:g}% of the rows expected", 11))
    x += steps * 10 + 250
    parts += [f"<rect x='{x}' y='{y}' width='14' height='12' fill='{GREEN}'/>",
              _text(x + 18, y + 10, f"complete (≥ {complete_pct:g}%, or any row)", 11)]
    x += 200
    parts += [f"<rect x='{x}' y='{y}' width='14' height='12' fill='{GREY}'/>",
              _text(x + 18, y + 10, "not started", 11)]
    return parts
