"""The invoice's consumption chart: electricity by day (by month for long periods), each
bar solar below and grid above, drawn as vectors with fpdf2."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal

from fpdf import FPDF

SOLAR = (242, 183, 5)
GRID = (91, 112, 131)
MAX_BARS = 62  # above this (a quarter, a year) the bars are months


def bars(daily: Sequence[dict[str, str]]) -> list[tuple[str, Decimal, Decimal]]:
    """(label, solar kWh, grid kWh) per bar: days as their day of month, or months."""
    rows = [(d["day"], Decimal(d["solar_kwh"]), Decimal(d["grid_kwh"])) for d in daily]
    if len(rows) <= MAX_BARS:
        return [(day[8:10].lstrip("0"), s, g) for day, s, g in rows]
    months: dict[str, list[Decimal]] = {}
    for day, s, g in rows:
        m = months.setdefault(day[:7], [Decimal(0), Decimal(0)])
        m[0] += s
        m[1] += g
    return [(f"{k[5:7]}.{k[2:4]}", s, g) for k, (s, g) in months.items()]


def _axis_top(peak: Decimal) -> tuple[Decimal, Decimal]:
    """A round top for the y axis above ``peak`` and its tick step (1, 2 or 5 x 10^n)."""
    if peak <= 0:
        return Decimal(1), Decimal(1)
    step = Decimal(1).scaleb(peak.adjusted())
    for mult in (Decimal("0.1"), Decimal("0.2"), Decimal("0.5"), Decimal(1), Decimal(2)):
        if peak / (step * mult) <= 6:
            step *= mult
            break
    top = (peak / step).to_integral_value(rounding="ROUND_CEILING") * step
    return top, step


def draw(pdf: FPDF, daily: Sequence[dict[str, str]], x: float, y: float, w: float,
         h: float, label: Callable[[str], str]) -> None:
    """The chart in the box (x, y, w, h) mm; ``label(key)`` gives the legend's words
    (``chart_solar``, ``chart_grid``)."""
    data = bars(daily)
    top, step = _axis_top(max((s + g for _, s, g in data), default=Decimal(0)))
    pdf.set_font("helvetica", size=7)
    pdf.set_draw_color(200, 200, 200)
    left = x + 12
    width = w - 12
    tick = Decimal(0)
    while tick <= top:
        ty = y + h - float(tick / top) * h
        pdf.line(left, ty, left + width, ty)
        pdf.set_xy(x, ty - 2)
        pdf.cell(10, 4, f"{tick.normalize():f}", align="R")
        tick += step
    slot = width / max(1, len(data))
    every = max(1, round(len(data) / 16))  # room for about 16 labels under the bars
    for k, (name, s, g) in enumerate(data):
        bx = left + k * slot + slot * 0.15
        bw = slot * 0.7
        hs = float(s / top) * h
        hg = float(g / top) * h
        if hs > 0:
            pdf.set_fill_color(*SOLAR)
            pdf.rect(bx, y + h - hs, bw, hs, style="F")
        if hg > 0:
            pdf.set_fill_color(*GRID)
            pdf.rect(bx, y + h - hs - hg, bw, hg, style="F")
        if k % every == 0:
            pdf.set_xy(left + k * slot - 2, y + h + 1)
            pdf.cell(slot + 4, 4, name, align="C")
    pdf.set_xy(x, y - 6)
    pdf.cell(12, 4, "kWh")
    for i, (colour, key) in enumerate(((SOLAR, "chart_solar"), (GRID, "chart_grid"))):
        lx = left + i * 45
        pdf.set_fill_color(*colour)
        pdf.rect(lx, y + h + 7, 4, 3, style="F")
        pdf.set_xy(lx + 5, y + h + 6.5)
        pdf.cell(38, 4, label(key))
