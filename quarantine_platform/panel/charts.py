"""The panel's two charts, drawn on the server as inline SVG: no script, no CDN, nothing fetched."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from html import escape

from markupsafe import Markup

from quarantine_platform.panel import formatting

WIDTH, HEIGHT = 720, 200
LEFT, RIGHT, TOP, BOTTOM = 64, 8, 12, 28


def _nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 x 10^k at or above `value` (an axis maximum)."""
    if value <= 0:
        return 1
    magnitude = 10 ** (len(str(int(value))) - 1) if value >= 1 else 1
    for step in (1, 2, 2.5, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def _frame(label: str, y_max_text: str, x_labels: list[tuple[float, str]], body: list[str]) -> Markup:
    plot_h = HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(label)}" '
        'xmlns="http://www.w3.org/2000/svg">',
        f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_h}"/>',
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}"/>',
        f'<text class="tick" x="{LEFT - 6}" y="{TOP + 4}" text-anchor="end">{escape(y_max_text)}</text>',
        f'<text class="tick" x="{LEFT - 6}" y="{TOP + plot_h}" text-anchor="end">0</text>',
    ]
    for x, text in x_labels:
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="middle">{escape(text)}</text>'
        )
    parts.extend(body)
    parts.append("</svg>")
    return Markup("".join(parts))


def minutes_chart(start: dt.datetime | None, end: dt.datetime | None, series: list[dict]) -> Markup:
    """WhatsApp notifications per minute from `start` to `end` (local, aware); minutes absent are zero."""
    if start is None or end is None:
        return Markup('<p class="empty">Sem dados ainda.</p>')
    zone = start.tzinfo
    first = start.astimezone(dt.UTC)  # step in UTC: local wall-clock steps would skip or repeat at DST
    total = max(int((end - start).total_seconds() // 60), 1)
    counts = {row["minute"].astimezone(dt.UTC): row["notifications"] for row in series}
    y_max = _nice_ceiling(max(counts.values(), default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    bar_w = plot_w / total
    body, labels = [], []
    for i in range(total + 1):
        local = (first + dt.timedelta(minutes=i)).astimezone(zone)
        if local.minute == 0:
            labels.append((LEFT + i * bar_w, f"{local:%H:%M}"))
        n = counts.get(first + dt.timedelta(minutes=i), 0) if i < total else 0
        if not n:
            continue
        h = plot_h * n / y_max
        body.append(
            f'<rect class="bar" x="{LEFT + i * bar_w:.2f}" y="{TOP + plot_h - h:.2f}" '
            f'width="{max(bar_w - 0.3, 0.6):.2f}" height="{h:.2f}">'
            f"<title>{local:%H:%M}: {formatting.integer(n)} notificações</title></rect>"
        )
    return _frame(
        f"Notificações WhatsApp por minuto, de {start:%H:%M} a {end:%H:%M}",
        formatting.integer(int(y_max)),
        labels,
        body,
    )


def billing_chart(start: dt.date | None, end: dt.date | None, days: list[dict]) -> Markup:
    """The value billed per day from `start` to `end` (days not billed have no bar)."""
    if start is None or end is None:
        return Markup('<p class="empty">Sem dados ainda.</p>')
    total = (end - start).days + 1
    by_day = {row["date"]: row for row in days}
    if not days:
        empty = (
            f'<text class="tick" x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">'
            "Nenhum dia cobrado no período.</text>"
        )
        return _frame(
            f"Cobrança por dia, de {formatting.date(start)} a {formatting.date(end)}", "", [], [empty]
        )
    top = max(row["value_brl"] for row in days)
    y_max = _nice_ceiling(float(top))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / total
    body, labels = [], []
    for i in range(total):
        day = start + dt.timedelta(days=i)
        if i % 5 == 0 or i == total - 1:
            labels.append((LEFT + (i + 0.5) * slot, f"{day:%d/%m}"))
        row = by_day.get(day)
        if row is None:
            continue
        h = plot_h * float(row["value_brl"]) / y_max
        body.append(
            f'<rect class="bar billing" x="{LEFT + i * slot + slot * 0.15:.2f}" y="{TOP + plot_h - h:.2f}" '
            f'width="{slot * 0.7:.2f}" height="{h:.2f}"><title>{formatting.date(day)}: '
            f"{escape(formatting.money(row['value_brl']))} ({formatting.integer(row['notifications'])} "
            "notificações)</title></rect>"
        )
    return _frame(
        f"Cobrança por dia, de {formatting.date(start)} a {formatting.date(end)}",
        formatting.money(Decimal(str(y_max))),
        labels,
        body,
    )
