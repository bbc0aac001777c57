"""Learning-rate schedules, as the laws of a loss curve need them: the LR of every step of a run, from a spec
(cosine, linear, constant, warmup-stable-decay), from a CSV of step and LR, or from the LR a log recorded; and the
checks that a schedule given for a run agrees with the LR its log recorded.

The LR of step i is the rate of the i-th update (i = 0, 1, ...); the loss logged at step s follows s updates,
made at lr[0..s-1]. Schedules are kept relative to their peak (the laws' scale parameters absorb the peak).

Spec syntax: `KIND:total=T[,warmup=W][,final=F][,decay=D][,peak=P]`, e.g. `cosine:total=19560,warmup=700,final=0`
(cosine from the peak to final x peak over the steps after warmup), `wsd:total=5100,decay=0.284,final=0` (constant,
then linear to final x peak over the last `decay` share of the steps), `linear:total=...`, `constant:total=...`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import lfilter

from ..errors import InputError

KINDS = ("cosine", "linear", "constant", "wsd")
AGREE_RTOL = 0.05  # a logged LR this far (relative, after scaling to the schedule's peak) from the schedule: refused


@dataclass
class Schedule:
    lr: np.ndarray  # the LR of each step 0..total-1, any scale
    source: str  # how it is known: "spec: ...", "file: ...", "plan", "log"

    @property
    def total(self) -> int:
        return len(self.lr)

    @property
    def peak(self) -> float:
        return float(np.max(self.lr)) if len(self.lr) else 0.0

    def relative(self) -> np.ndarray:
        return self.lr / self.peak if self.peak > 0 else self.lr


def build(kind: str, total: int, warmup: int = 0, final: float = 0.1, decay: float = 0.2,
          peak: float = 1.0) -> np.ndarray:
    """The LR of each step of a `kind` schedule (warmup linear from peak/warmup to the peak)."""
    if kind not in KINDS:
        raise InputError(f"--schedule: unknown kind {kind!r} (one of {', '.join(KINDS)})")
    if not (total >= 1 and 0 <= warmup < total and 0 <= final <= 1 and 0 < decay <= 1 and peak > 0):
        raise InputError(f"--schedule {kind}: needs total >= 1, 0 <= warmup < total, 0 <= final <= 1, "
                         f"0 < decay <= 1 and peak > 0 (got total={total}, warmup={warmup}, final={final:g}, "
                         f"decay={decay:g}, peak={peak:g})")
    i = np.arange(total, dtype=float)
    lr = np.full(total, peak)
    if warmup:
        lr[:warmup] = peak * (i[:warmup] + 1) / warmup
    after = i[warmup:] - warmup
    span = max(1.0, total - warmup)
    if kind == "cosine":
        lr[warmup:] = peak * (final + 0.5 * (1 - final) * (1 + np.cos(math.pi * np.minimum(after / span, 1.0))))
    elif kind == "linear":
        lr[warmup:] = peak * (1 - (1 - final) * after / span)
    elif kind == "wsd":
        start = int(total * (1 - decay))
        d = np.arange(total) >= max(start, warmup)
        lr[d] = peak + (final * peak - peak) * (np.arange(total)[d] - start) / max(1, total - start)
    return lr


def parse(spec: str) -> Schedule:
    """A schedule from a spec (see the module's docstring) or a CSV file of step and LR."""
    if Path(spec).is_file():
        return from_csv(Path(spec))
    kind, _, rest = spec.partition(":")
    kw = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        if not eq or key not in ("total", "warmup", "final", "decay", "peak"):
            raise InputError(f"--schedule {spec}: {part!r} is not one of total=, warmup=, final=, decay=, peak=")
        try:
            x = float(value)
        except ValueError:
            raise InputError(f"--schedule {spec}: {key}={value!r} is not a number") from None
        if not math.isfinite(x):
            raise InputError(f"--schedule {spec}: {key} is not finite")
        kw[key] = int(x) if key in ("total", "warmup") else x
    if "total" not in kw:
        raise InputError(f"--schedule {spec}: needs total= (the run's last step), e.g. cosine:total=5000,warmup=100")
    return Schedule(build(kind.strip(), **kw), f"spec: {spec}")


def from_csv(path: Path) -> Schedule:
    """A schedule from a CSV of step and LR (a header line, then one row per change or per step): piecewise
    constant from each listed step to the next; the last listed step is the run's last."""
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read the schedule ({e})") from None
    for n, line in enumerate(lines, 1):
        cells = [c.strip() for c in line.split(",")]
        if not line.strip() or (n == 1 and not _is_number(cells[0])):
            continue
        if len(cells) < 2 or not (_is_number(cells[0]) and _is_number(cells[1])):
            raise InputError(f"{path}, line {n}: expected step,lr (two numbers)")
        step, lr = float(cells[0]), float(cells[1])
        if step < 0 or step != int(step) or not (math.isfinite(lr) and lr >= 0):
            raise InputError(f"{path}, line {n}: step must be a whole number >= 0 and lr a number >= 0")
        rows.append((int(step), lr))
    if len(rows) < 2:
        raise InputError(f"{path}: a schedule needs at least two rows of step,lr")
    rows.sort()
    steps = np.array([s for s, _ in rows])
    if len(set(steps.tolist())) < len(steps):
        raise InputError(f"{path}: a step is listed twice")
    total = int(steps[-1]) + 1
    idx = np.searchsorted(steps, np.arange(total), side="right") - 1
    lr = np.array([v for _, v in rows])[np.maximum(idx, 0)]
    return Schedule(lr, f"file: {path}")


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def check_agrees(schedule: Schedule, steps, lrs, where: str) -> None:
    """A schedule given for a run must agree with the LR its log recorded (up to the peak's scale, which a spec
    need not give): else one line naming the first step where they part."""
    steps, lrs = np.asarray(steps, int), np.asarray(lrs, float)
    inside = (steps >= 0) & (steps < schedule.total) & np.isfinite(lrs)
    if not inside.any():
        return
    s, logged = steps[inside], lrs[inside]
    planned = schedule.lr[s]
    scale = np.median(logged[planned > 0] / planned[planned > 0]) if np.any(planned > 0) else 1.0
    off = np.abs(planned * scale - logged) > AGREE_RTOL * max(float(np.max(logged)), 1e-300) + 1e-12
    if off.any():
        k = int(np.flatnonzero(off)[0])
        raise InputError(f"{where}: the schedule ({schedule.source}) contradicts the logged LR at step {s[k]} "
                         f"(logged {logged[k]:.4g}, the schedule gives {planned[k] * scale:.4g} at the logged peak)")


def areas(lr: np.ndarray, steps, decay: float = 0.999) -> tuple[np.ndarray, np.ndarray]:
    """(S1, S2) at each of `steps`, for the LR-annealing law (Tissue et al. 2024): S1 the summed LR of the updates
    so far (the forward area), S2 the annealing area, the sum of a momentum of the LR's decreases
    (m_i = decay m_{i-1} + max(lr_{i-1} - lr_i, 0)). The LR is taken relative to its peak."""
    rel = lr / max(float(np.max(lr)), 1e-300)
    s1 = np.concatenate([[0.0], np.cumsum(rel)])
    drop = np.maximum(np.concatenate([[0.0], rel[:-1] - rel[1:]]), 0.0)
    m = lfilter([1.0], [1.0, -decay], drop)  # m_i = decay m_{i-1} + drop_i
    s2 = np.concatenate([[0.0], np.cumsum(m)])
    steps = np.clip(np.asarray(steps, int), 0, len(lr))
    return s1[steps], s2[steps]
