"""The report's charts as inline SVG, from plain numbers: no I/O, no script, no external style.

Each chart is one `<svg>` with a `viewBox` (it scales to its container) and an id; each bar is a
`<rect class="bar" data-value=...>` with a `<title>` a browser shows on hover. Every text that came
from a user (labels, licences) is escaped here, since the page inserts the SVG as markup."""

from __future__ import annotations

import math
from html import escape

WIDTH = 640
ROW = 22
LABEL_CHARS = 26
BARS = 40
"""Bars a bar chart draws at most (labels of an ImageNet-sized job would be 1,000)."""
TIMELINE_ROWS = 120
"""Rows a timeline draws at most: more chunks are drawn as runs of consecutive chunks, one row each."""
PALETTE = ("#3b6ea8", "#d9822b", "#5a9e4b", "#a84a6e")


def _text(value: object) -> str:
    return escape(str(value), quote=True)


def _short(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[:LABEL_CHARS - 1] + "\u2026"


def _frame(chart_id: str, title: str, height: int, body: list[str]) -> str:
    return (f'<svg id="{_text(chart_id)}" class="chart" viewBox="0 0 {WIDTH} {height}" role="img" '
            f'aria-label="{_text(title)}" xmlns="http://www.w3.org/2000/svg">'
            f'<title>{_text(title)}</title>'
            f'<text x="0" y="16" class="chart-title">{_text(title)}</text>' + "".join(body) + "</svg>")


def _empty(chart_id: str, title: str) -> str:
    return _frame(chart_id, title, 60, ['<text x="0" y="44" class="chart-empty">no data</text>'])


def top_bars(bars: list[tuple[str, int]], limit: int = BARS) -> list[tuple[str, int]]:
    """The first `limit` - 1 bars, and one for the rest together when there are more than `limit`."""
    if len(bars) <= limit:
        return list(bars)
    rest = bars[limit - 1:]
    return bars[:limit - 1] + [(f"{len(rest)} more", sum(value for _, value in rest))]


def bar_chart(chart_id: str, title: str, bars: list[tuple[str, int]]) -> str:
    """Horizontal bars, one per (name, value), in the order given, at most BARS (the rest summed in the
    last); names are cut to fit, whole in the hover."""
    if not bars:
        return _empty(chart_id, title)
    bars = top_bars(bars)
    left, top, right = 200, 28, 70
    scale = (WIDTH - left - right) / max(max(value for _, value in bars), 1)
    body = []
    for row, (name, value) in enumerate(bars):
        y = top + row * ROW
        length = value * scale
        body.append(f'<text x="{left - 6}" y="{y + 15}" text-anchor="end" class="axis">{_text(_short(name))}</text>'
                    f'<rect class="bar" x="{left}" y="{y + 3}" width="{length:.1f}" height="{ROW - 6}" '
                    f'fill="{PALETTE[0]}" data-name="{_text(name)}" data-value="{value}">'
                    f'<title>{_text(name)}: {value}</title></rect>'
                    f'<text x="{left + length + 4:.1f}" y="{y + 15}" class="value">{value}</text>')
    return _frame(chart_id, title, top + len(bars) * ROW + 6, body)


def column_chart(chart_id: str, title: str, bins: list[str], series: list[tuple[str, list[int]]]) -> str:
    """Grouped vertical bars: one group per bin, one bar per series in it, with a legend."""
    if not series or not any(sum(values) for _, values in series):
        return _empty(chart_id, title)
    left, top, bottom, plot_height = 40, 44, 56, 180
    group = (WIDTH - left - 8) / len(bins)
    bar = max(group * 0.8 / len(series), 1.0)
    peak = max(max(values) for _, values in series) or 1
    body = []
    for index, (name, _) in enumerate(series):
        x = left + index * 130
        body.append(f'<rect x="{x}" y="24" width="10" height="10" fill="{PALETTE[index % len(PALETTE)]}"/>'
                    f'<text x="{x + 14}" y="33" class="axis">{_text(name)}</text>')
    baseline = top + plot_height
    body.append(f'<line x1="{left}" y1="{baseline}" x2="{WIDTH - 8}" y2="{baseline}" class="rule"/>'
                f'<text x="{left - 4}" y="{top + 8}" text-anchor="end" class="axis">{peak}</text>')
    for column, bin_name in enumerate(bins):
        x0 = left + column * group + group * 0.1
        for index, (name, values) in enumerate(series):
            value = values[column]
            height = value / peak * plot_height
            body.append(f'<rect class="bar" x="{x0 + index * bar:.1f}" y="{baseline - height:.1f}" width="{bar:.1f}" '
                        f'height="{height:.1f}" fill="{PALETTE[index % len(PALETTE)]}" data-name="{_text(name)}" '
                        f'data-bin="{_text(bin_name)}" data-value="{value}">'
                        f'<title>{_text(name)} {_text(bin_name)}: {value}</title></rect>')
        label_x = left + column * group + group / 2
        body.append(f'<text x="{label_x:.1f}" y="{baseline + 12}" class="tick" text-anchor="end" '
                    f'transform="rotate(-40 {label_x:.1f} {baseline + 12})">{_text(bin_name)}</text>')
    return _frame(chart_id, title, baseline + bottom, body)


def merge_spans(spans: list[tuple[str, float, float]], rows: int = TIMELINE_ROWS) -> list[tuple[str, float, float]]:
    """At most `rows` spans: consecutive ones merged (earliest start, latest end) under a joined name."""
    if len(spans) <= rows:
        return list(spans)
    size = math.ceil(len(spans) / rows)
    merged = []
    for start in range(0, len(spans), size):
        run = spans[start:start + size]
        name = run[0][0] if len(run) == 1 else f"{run[0][0]}\u2013{run[-1][0]}"
        merged.append((name, min(span[1] for span in run), max(span[2] for span in run)))
    return merged


def timeline_chart(chart_id: str, title: str, spans: list[tuple[str, float, float]]) -> str:
    """One row per (name, start, end), in seconds from the first start: when each chunk ran."""
    if not spans:
        return _empty(chart_id, title)
    spans = merge_spans(spans)
    left, top, right, row = 110, 28, 60, 14
    end = max(max(span[2] for span in spans), 1e-9)
    scale = (WIDTH - left - right) / end
    body = []
    for index, (name, start, finish) in enumerate(spans):
        y = top + index * row
        width = max((finish - start) * scale, 1.0)
        seconds = finish - start
        body.append(f'<text x="{left - 6}" y="{y + 11}" text-anchor="end" class="tick">{_text(name)}</text>'
                    f'<rect class="bar" x="{left + start * scale:.1f}" y="{y + 2}" width="{width:.1f}" '
                    f'height="{row - 4}" fill="{PALETTE[1]}" data-name="{_text(name)}" data-start="{start:.3f}" '
                    f'data-value="{seconds:.3f}"><title>chunk {_text(name)}: {seconds:.1f} s, from '
                    f'{start:.1f} s</title></rect>')
    baseline = top + len(spans) * row + 4
    body.append(f'<line x1="{left}" y1="{baseline}" x2="{WIDTH - right}" y2="{baseline}" class="rule"/>'
                f'<text x="{left}" y="{baseline + 14}" class="tick">0 s</text>'
                f'<text x="{WIDTH - right}" y="{baseline + 14}" text-anchor="end" class="tick">{end:.1f} s</text>')
    return _frame(chart_id, title, baseline + 22, body)
