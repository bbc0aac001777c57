"""How numbers and durations are written in every console table (parsing numbers out of logs is ingest's own
`to_float`)."""

from __future__ import annotations

import math


def num(x, digits: int = 4) -> str:
    """The number format of every console table: `digits` significant digits, scientific beyond 1e5 or below 1e-3,
    '-' for a missing or non-finite value."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    if x == 0:
        return "0"
    if abs(x) >= 1e5 or abs(x) < 1e-3:
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}g}"


def duration(seconds: float) -> str:
    """A duration in the unit that reads best: minutes, hours or days."""
    if seconds < 120 * 60:
        return f"{seconds / 60:.1f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def band(p: dict) -> str:
    """A prediction's interval as forecasts print it, '[lower, upper]' to 4 decimals, or '(no interval)' where it
    has none."""
    return "(no interval)" if p.get("lower") is None else f"[{p['lower']:.4f}, {p['upper']:.4f}]"
