"""``status --plot``: the coverage as a heat map, participants × days, one panel per metric.

Pure: the SVG is written by hand as text (no plotting library to install), and
the caller writes it to a file. Each cell is coloured by the share of the rows
expected that day: red without a row, amber shades for a partial day (darker is
fewer), green for a complete one. A metric with no fixed count is green or red.
"""

from __future__ import annotations

import math
from xml.sax.saxutils import escape, quoteattr

from wearables_ingest.status import COMPLETE, MISSING, Day, Status

GREEN, RED = "#1a9850", "#d73027"
AMBER_LOW, AMBER_HIGH = (0xe6, 0x55, 0x0d), (0xfe, 0xd9, 0x76)  # share near 0, near complete
FONT = "font-family='DejaVu Sans, Arial, Helvetica, sans-serif'"

MARGIN, TOP = 16, 66  # the picture's margin; the title and legend above the panels
AXIS = 44  # left of each grid: the axis title "participant" and the participants' numbers
PANEL_TITLE, X_LABELS, PANEL_GAP = 22, 52, 18  # a panel: title, day labels below, gap after
ROW_H, GRID_H = 18, 72  # a participant's row at least, the rows together at least
MAX_GRID_W = 840  # the days share this width; each at most 28 px
MAX_W = 1200  # panels sit side by side while the picture stays this narrow
MIN_W = 760  # room for the title and the legend

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


def heatmap_svg(st: Status) -> str:
    """The whole picture as SVG text: a title, a legend, and one panel per metric."""
    participants = sorted({d.participant for d in st.days})
    metrics = sorted({d.metric for d in st.days})
    days = sorted({d.day for d in st.days})
    cell_w = max(2.0, min(28.0, MAX_GRID_W / max(1, len(days))))
    panel_w = AXIS + cell_w * len(days) + PANEL_GAP
    panel_h = PANEL_TITLE + _row_h(participants) * len(participants) + X_LABELS + PANEL_GAP
    across = max(1, min(len(metrics), 3, int((MAX_W - 2 * MARGIN) // panel_w)))
    down = math.ceil(len(metrics) / across) if metrics else 0
    width = max(MIN_W, 2 * MARGIN + across * panel_w)
    height = TOP + panel_h * down + MARGIN
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
    for i, metric in enumerate(metrics):
        left = MARGIN + (i % across) * panel_w
        top = TOP + (i // across) * panel_h
        out += _panel(st, metric, participants, days, left, top, cell_w)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _panel(st: Status, metric: str, participants: list[int], days: list, left: float,
           top: float, cell_w: float) -> list[str]:
    """One metric: its title, a row per participant, a column per day, the axes' labels."""
    cells = {(d.participant, d.day): d for d in st.days if d.metric == metric}
    expected = next(iter(cells.values())).expected
    per_day = ("no fixed count: green with rows, red without" if expected is None
               else f"{expected:,} row{'s' if expected != 1 else ''} expected a day")
    out = [_text(left, top + 15, f"{metric}  ·  {per_day}", 13, extra=" font-weight='bold'")]
    grid_left, grid_top = left + AXIS, top + PANEL_TITLE
    row_h = _row_h(participants)
    bottom = grid_top + row_h * len(participants)
    middle = (grid_top + bottom) / 2
    out.append(_text(left + 10, middle, "participant", 11, "middle",
                     extra=f" fill='#444' transform='rotate(-90 {left + 10:.1f} {middle:.1f})'"))
    gap = 1 if cell_w >= 6 else 0  # white lines between cells, where they leave room
    for row, participant in enumerate(participants):
        y = grid_top + row * row_h
        out.append(_text(grid_left - 6, y + row_h / 2 + 4, str(participant), 11, "end"))
        for col, day in enumerate(days):
            d = cells.get((participant, day))
            if d is not None:
                out.append(f"<rect x='{grid_left + col * cell_w:.1f}' y='{y:.1f}' "
                           f"width='{cell_w:.1f}' height='{row_h:.1f}' "
                           f"fill='{colour(d, st.expectations.complete_pct)}' stroke='white' "
                           f"stroke-width='{gap}'><title>{escape(_tooltip(d))}</title></rect>")
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


def _row_h(participants: list[int]) -> float:
    """Rows tall enough for the axis title beside them, however few the participants."""
    return max(ROW_H, GRID_H / max(1, len(participants)))


def _legend(x: float, y: float, complete_pct: float) -> list[str]:
    """Swatches: missing, the amber scale of partial days, complete."""
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
    return parts
