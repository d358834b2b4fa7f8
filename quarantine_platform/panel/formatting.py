"""pt-BR formats for the panel's pages: `25.000`, `R$ 1.000,00`, `03/02/2020`, `fevereiro de 2020`."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

MONTHS = (
    "janeiro",
    "fevereiro",
    "março",
    "abril",
    "maio",
    "junho",
    "julho",
    "agosto",
    "setembro",
    "outubro",
    "novembro",
    "dezembro",
)


def _group(digits: str) -> str:
    """Thousands separated by dots: '1234567' -> '1.234.567'."""
    head = len(digits) % 3 or 3
    return ".".join([digits[:head]] + [digits[i : i + 3] for i in range(head, len(digits), 3)])


def integer(value: int) -> str:
    return ("-" if value < 0 else "") + _group(str(abs(int(value))))


def money(value: Decimal) -> str:
    cents = Decimal(value).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    units, fraction = f"{abs(cents):.2f}".split(".")
    return ("-" if cents < 0 else "") + f"R$ {_group(units)},{fraction}"


def date(value: dt.date) -> str:
    return value.strftime("%d/%m/%Y")


def month(value: dt.date) -> str:
    return f"{MONTHS[value.month - 1]} de {value.year}"


def instant(value: dt.datetime) -> str:
    """ISO 8601 with the offset, to the second, as the seeds show it: 2020-02-03T15:00:00+00:00."""
    return value.isoformat(timespec="seconds")


def duration(seconds: int) -> str:
    """A short human duration: '45 s', '12 min', '3 h 05 min', '2 d 04 h'."""
    seconds = max(int(seconds), 0)
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h {minutes % 60:02d} min"
    return f"{hours // 24} d {hours % 24:02d} h"
