"""The one figure style, decided here: grayscale-safe (markers and line styles carry the meaning, not colour alone),
units on every axis, labels that do not overlap at the demo's sizes; and writing a figure atomically."""

from __future__ import annotations

import math
from pathlib import Path

from ..errors import InputError

INK, MID, LIGHT = "#1b1b1b", "#5b6b7b", "#c9d1d9"
ACCENT = "#1f5fa8"  # one accent colour; everything also reads in grayscale
STYLE = {
    "figure.dpi": 110, "savefig.dpi": 150, "font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9,
    "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "grid.color": "#e6e6e6",
    "grid.linewidth": 0.6, "legend.frameon": False, "legend.fontsize": 8, "axes.edgecolor": MID,
    "xtick.color": MID, "ytick.color": MID, "font.family": "DejaVu Sans",
}


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(STYLE)
    return plt


def save(fig, path):
    path = Path(path)
    if path.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise InputError(f"{path}: output must end in .png, .svg or .pdf")
    if not path.parent.exists():
        raise InputError(f"{path}: folder {path.parent} does not exist")
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        fig.savefig(tmp, bbox_inches="tight", metadata={"Date": None} if path.suffix == ".pdf" else None)
        tmp.replace(path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise InputError(f"{path}: cannot write ({e.strerror})") from None
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)


def finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
