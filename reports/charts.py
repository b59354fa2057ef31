"""Server-rendered SVG charts: lines and bars, no JavaScript, no CDN.

A chart is a picture of numbers that are also in a table below it, so it
aims at the shape (trend, peaks, the target line) and keeps exact values for
the tooltips (<title>) and the table. Colours come from reports.css classes
(.s1 .. .s7), so the SVG carries no styling of its own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

MAX_X_LABELS = 14
SERIES_CLASSES = 7


@dataclass
class Series:
    name: str
    values: Sequence[float | int | None]


@dataclass
class Chart:
    title: str
    svg: SafeString
    legend: list[tuple[str, str]]  # (series name, css class)
    note: str = ""


def _nice_step(rough: float) -> float:
    if rough <= 0:
        return 1.0
    exponent = 10 ** math.floor(math.log10(rough))
    for factor in (1, 2, 2.5, 5, 10):
        if rough <= factor * exponent:
            return factor * exponent
    return 10 * exponent  # pragma: no cover - the loop always returns


def axis(top_value: float, ticks: int = 4) -> tuple[float, list[float]]:
    """A round top for the y axis and the tick values from 0 to it."""
    top_value = max(top_value, 0.0)
    if top_value == 0:
        return 1.0, [0.0, 0.25, 0.5, 0.75, 1.0]
    step = _nice_step(top_value / ticks)
    top = step * math.ceil(top_value / step - 1e-9)
    count = round(top / step)
    return top, [step * i for i in range(count + 1)]


def short_number(value: float, unit: str = "") -> str:
    """Tick labels: 1.5k, 2M, 25%, $3.2k, 180 ms."""
    if unit == "%":
        return f"{value * 100:.1f}".rstrip("0").rstrip(".") + "%"
    magnitude = abs(value)
    if magnitude >= 1_000_000:
        text = f"{value / 1_000_000:.1f}".rstrip("0").rstrip(".") + "M"
    elif magnitude >= 10_000:
        text = f"{value / 1000:.0f}k"
    elif magnitude >= 1000:
        text = f"{value / 1000:.1f}".rstrip("0").rstrip(".") + "k"
    elif magnitude >= 10 or value == int(value):
        text = f"{value:.0f}"
    else:
        text = f"{value:.2f}".rstrip("0").rstrip(".")
    if unit == "$":
        return "$" + text
    return f"{text} {unit}" if unit else text


def exact(value: float | int | None, unit: str = "") -> str:
    """Tooltip value."""
    if value is None:
        return "no data"
    if unit == "%":
        return f"{value * 100:.1f}%"
    if unit == "$":
        return f"${value:,.2f}"
    text = f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"
    return f"{text} {unit}" if unit else text


class _Frame:
    """The plot area and its y scale; x is a band per label."""

    def __init__(self, *, width: int, height: int, left: int, count: int, top_value: float):
        self.width, self.height = width, height
        self.left, self.right, self.top, self.bottom = left, 16, 14, 30
        self.plot_w = width - self.left - self.right
        self.plot_h = height - self.top - self.bottom
        self.count = max(count, 1)
        self.y_top, self.ticks = axis(top_value)

    def band(self) -> float:
        return self.plot_w / self.count

    def x(self, index: int) -> float:
        return self.left + self.band() * (index + 0.5)

    def y(self, value: float) -> float:
        return self.top + self.plot_h * (1 - min(value, self.y_top) / self.y_top)

    def grid(self, unit: str) -> list[str]:
        parts = []
        for tick in self.ticks:
            y = self.y(tick)
            parts.append(
                f'<line class="grid" x1="{self.left}" x2="{self.width - self.right}" '
                f'y1="{y:.1f}" y2="{y:.1f}"/>'
                f'<text class="tick" x="{self.left - 6}" y="{y + 4:.1f}" text-anchor="end">'
                f"{escape(short_number(tick, unit))}</text>"
            )
        return parts

    def x_labels(self, labels: Sequence[str]) -> list[str]:
        every = max(1, math.ceil(len(labels) / MAX_X_LABELS))
        baseline = self.height - 10
        return [
            f'<text class="tick" x="{self.x(i):.1f}" y="{baseline}" text-anchor="middle">'
            f"{escape(label)}</text>"
            for i, label in enumerate(labels)
            if i % every == 0
        ]

    def target(self, value: float | None, label: str, unit: str) -> list[str]:
        if value is None:
            return []
        y = self.y(value)
        # Named in the legend; a label inside the plot would sit on the bars.
        return [
            f'<line class="target" x1="{self.left}" x2="{self.width - self.right}" '
            f'y1="{y:.1f}" y2="{y:.1f}"><title>{escape(label)}: {escape(exact(value, unit))}'
            f"</title></line>"
        ]


def _svg(title: str, width: int, height: int, parts: list[str]) -> SafeString:
    body = "".join(parts)
    return mark_safe(  # noqa: S308 - every text in `parts` went through escape()
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>{body}</svg>"
    )


def _css(index: int) -> str:
    return f"s{index % SERIES_CLASSES + 1}"


def _top(series: Sequence[Series], target: float | None, stacked: bool, count: int) -> float:
    if stacked:
        top = max(
            (sum(s.values[i] or 0 for s in series) for i in range(count)),
            default=0,
        )
    else:
        top = max((v for s in series for v in s.values if v is not None), default=0)
    return max(float(top), float(target or 0))


def line_chart(
    *,
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    unit: str = "",
    target: float | None = None,
    target_label: str = "Target",
    width: int = 1100,
    height: int = 250,
) -> Chart:
    frame = _Frame(
        width=width,
        height=height,
        left=62,
        count=len(labels),
        top_value=_top(series, target, False, len(labels)),
    )
    parts = frame.grid(unit) + frame.x_labels(labels)
    show_points = len(labels) <= 62
    for index, line in enumerate(series):
        css = _css(index)
        runs: list[list[str]] = [[]]
        points = []
        for i, value in enumerate(line.values):
            if value is None:
                runs.append([])
                continue
            x, y = frame.x(i), frame.y(float(value))
            runs[-1].append(f"{x:.1f},{y:.1f}")
            if show_points:
                points.append(
                    f'<circle class="{css}" cx="{x:.1f}" cy="{y:.1f}" r="3">'
                    f"<title>{escape(labels[i])} · {escape(line.name)}: "
                    f"{escape(exact(value, unit))}</title></circle>"
                )
        for run in runs:
            if len(run) > 1:
                parts.append(f'<polyline class="line {css}" points="{" ".join(run)}"/>')
        parts.extend(points)
    parts += frame.target(target, target_label, unit)
    legend = [(s.name, _css(i)) for i, s in enumerate(series)]
    if target is not None:
        legend.append((target_label, "target"))
    return Chart(title=title, svg=_svg(title, width, height, parts), legend=legend)


def bar_chart(
    *,
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    unit: str = "",
    stacked: bool = False,
    target: float | None = None,
    target_label: str = "Target",
    width: int = 1100,
    height: int = 250,
) -> Chart:
    frame = _Frame(
        width=width,
        height=height,
        left=62,
        count=len(labels),
        top_value=_top(series, target, stacked, len(labels)),
    )
    parts = frame.grid(unit) + frame.x_labels(labels)
    band = frame.band()
    inner = band * 0.72
    groups = 1 if stacked else max(len(series), 1)
    bar_w = max(inner / groups, 1.0)
    base_y = frame.y(0)
    for i, label in enumerate(labels):
        left = frame.x(i) - inner / 2
        stack = 0.0
        for index, bars in enumerate(series):
            value = bars.values[i]
            if not value:
                continue
            if stacked:
                y_low, y_high = frame.y(stack), frame.y(stack + float(value))
                stack += float(value)
                x = left
            else:
                y_low, y_high = base_y, frame.y(float(value))
                x = left + index * bar_w
            parts.append(
                f'<rect class="bar {_css(index)}" x="{x:.1f}" y="{y_high:.1f}" '
                f'width="{bar_w:.1f}" height="{max(y_low - y_high, 0.5):.1f}">'
                f"<title>{escape(label)} · {escape(bars.name)}: {escape(exact(value, unit))}"
                f"</title></rect>"
            )
    parts += frame.target(target, target_label, unit)
    legend = [(s.name, _css(i)) for i, s in enumerate(series)]
    if target is not None:
        legend.append((target_label, "target"))
    return Chart(title=title, svg=_svg(title, width, height, parts), legend=legend)


def hbar_chart(
    *,
    title: str,
    labels: Sequence[str],
    values: Sequence[float | None],
    unit: str = "",
    width: int = 540,
    label_width: int = 170,
) -> Chart:
    """One horizontal bar per label (fields, arms, models), value at the end."""
    row_h, top = 24, 8
    height = top * 2 + row_h * max(len(labels), 1)
    right = 70
    top_value, _ = axis(max((float(v) for v in values if v is not None), default=0))
    plot_w = width - label_width - right
    parts = []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = top + i * row_h
        name = label if len(label) <= 26 else label[:25] + "…"
        parts.append(
            f'<text class="tick" x="{label_width - 8}" y="{y + 16}" text-anchor="end">'
            f"{escape(name)}<title>{escape(label)}</title></text>"
        )
        if value is None:
            continue
        bar = plot_w * float(value) / top_value
        parts.append(
            f'<rect class="bar s1" x="{label_width}" y="{y + 4}" width="{max(bar, 0.5):.1f}" '
            f'height="{row_h - 8}"><title>{escape(label)}: {escape(exact(value, unit))}'
            f"</title></rect>"
            f'<text class="value" x="{label_width + bar + 6:.1f}" y="{y + 16}">'
            f"{escape(exact(value, unit))}</text>"
        )
    return Chart(title=title, svg=_svg(title, width, height, parts), legend=[])
