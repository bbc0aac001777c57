"""The compute-efficient frontier of a run table, and what it tells about the sweep that made it.

- IsoFLOP groups: runs by `budget` (else by compute within 0.05 dex).
- One frontier point per group: the vertex of a parabola of loss in log N (Hoffmann et al. 2022, approach 2) where
  a group has at least 3 sizes, else its lowest loss; repeated seeds of one size count once, at their mean.
- Edges: a group whose lowest (seed-mean) loss is at its smallest or largest size does not bracket its minimum;
  the sweep trains a size beyond that edge (plan.bracket_next) and fits warn about the rest.
- Seed noise: the pooled scatter of repeated runs (same params and compute), the noise floor of every interval.

Used by fit (its points), backtest (its targets), plots (the IsoFLOP figure), plan (bracketing) and report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .runs import RunTable

GROUP_TOLERANCE_DEX = 0.05  # runs whose compute differs by < 0.05 in log10 (12%) form one IsoFLOP group
VERTEX_RTOL = 1e-9  # a vertex this close above the lowest loss is at it (float rounding of the parabola's fit)


@dataclass
class FrontierPoint:
    compute: float
    loss: float
    params: float  # NaN where unknown
    tokens: float
    method: str  # "vertex" (parabola in log N), "min" (best run of the group), "single"
    members: list[int]  # indices into the run table
    best: int  # index of the lowest-loss member
    # "smallest" / "largest" where the set's lowest (seed-mean) loss is at its smallest / largest size: the set does
    # not bracket the minimum, so the point is an upper bound on the frontier (a larger or smaller size may do better)
    edge: str | None = None

    def as_dict(self, table: RunTable) -> dict:
        return {
            "compute": self.compute,
            "loss": self.loss,
            "params": None if not math.isfinite(self.params) else self.params,
            "tokens": None if not math.isfinite(self.tokens) else self.tokens,
            "method": self.method,
            "runs": [table.names[i] for i in self.members],
            "edge": self.edge,
        }


def isoflop_groups(table: RunTable, tolerance_dex: float = GROUP_TOLERANCE_DEX) -> list[list[int]]:
    """Group runs into IsoFLOP sets: by `budget` where every run has one, else by compute within a tolerance
    (sorted by compute; a run joins the current group while it is within `tolerance_dex` of the group's first)."""
    if len(table) and np.all(np.isfinite(table.budget)):
        keys = np.round(np.log10(table.budget), 6)
        return [list(np.flatnonzero(keys == k)) for k in np.unique(keys)]
    order = np.argsort(table.compute, kind="stable")
    lc = np.log10(table.compute)
    groups: list[list[int]] = []
    for i in order:
        if groups and lc[i] - lc[groups[-1][0]] < tolerance_dex:
            groups[-1].append(int(i))
        else:
            groups.append([int(i)])
    return groups


def group_compute(table: RunTable, group) -> float:
    """The compute an IsoFLOP group stands for: the geometric mean of its budgets (else of its runs' compute)."""
    g = np.asarray(group)
    by_budget = table.budget_is_compute and np.all(np.isfinite(table.budget[g]))
    src = table.budget[g] if by_budget else table.compute[g]
    return float(np.exp(np.mean(np.log(src))))


def edge(sizes, mean_loss) -> str | None:
    """"smallest" or "largest" where the lowest of `mean_loss` (one value per size, sizes ascending) is at an end of
    at least two sizes: the set does not bracket its minimum. None where it does (or has one size)."""
    if len(sizes) < 2:
        return None
    lowest = int(np.argmin(mean_loss))
    return "smallest" if lowest == 0 else "largest" if lowest == len(sizes) - 1 else None


def vertex(logn, loss):
    """Vertex of the parabola loss = p0*x^2 + p1*x + p2 in x = log N (Hoffmann et al. 2022, approach 2), or None
    where the parabola opens downward or its vertex lies outside the sampled sizes (then the minimum is used)."""
    p0, p1, p2 = np.polyfit(logn, loss, 2)
    if p0 <= 0:
        return None
    x = -p1 / (2 * p0)
    if not (logn.min() <= x <= logn.max()):
        return None
    return x, p2 - p1 * p1 / (4 * p0)


def local_vertex(logn, loss):
    """The vertex of the parabola through the lowest size and its two neighbours (Hoffmann et al.'s approach 2,
    fitted where a parabola describes the set: near its minimum; over a set spanning 100x or more in N a parabola
    through every size is a poor description and misplaces the minimum), or None where the lowest size is at an
    edge or the vertex falls outside the three sizes."""
    i = int(np.argmin(loss))
    if i == 0 or i == len(loss) - 1:
        return None
    v = vertex(np.asarray(logn)[i - 1 : i + 2], np.asarray(loss)[i - 1 : i + 2])
    # a parabola through an exact minimum puts its vertex a rounding error above it: that is the minimum's vertex
    if v is None or v[1] > loss[i] * (1 + VERTEX_RTOL):
        return None
    return v[0], min(v[1], float(loss[i]))


def frontier(table: RunTable, tolerance_dex: float = GROUP_TOLERANCE_DEX, pareto: bool = True) -> list[FrontierPoint]:
    """The compute-efficient frontier: one point per IsoFLOP group (the vertex of the parabola in log N through the
    lowest size and its neighbours where the group has >= 3 distinct sizes, else its lowest loss), then, if `pareto`, only the points that no cheaper point
    beats (Kaplan et al. 2020's envelope; a larger budget cannot be worse than a smaller one on the frontier)."""
    points = []
    for g in isoflop_groups(table, tolerance_dex):
        g = np.array(g)
        best = int(g[np.argmin(table.loss[g])])
        compute = group_compute(table, g)
        n = table.params[g]
        point = None
        mean_loss, sizes = table.loss[g], None
        if np.all(np.isfinite(n)):
            # repeated seeds of one size count once, at their mean loss (the min of several seeds is biased low)
            _, inverse = np.unique(np.round(np.log(n), 6), return_inverse=True)
            counts = np.bincount(inverse)
            mean_loss = np.bincount(inverse, weights=table.loss[g]) / counts
            sizes = np.bincount(inverse, weights=np.log(n)) / counts
            if len(sizes) < len(g):
                best = int(g[np.flatnonzero(inverse == np.argmin(mean_loss))[0]])
        side = edge(sizes, mean_loss) if sizes is not None else None  # np.unique sorted the sizes
        if sizes is not None and len(sizes) >= 3:
            v = local_vertex(sizes, mean_loss)
            if v is not None and v[1] > 0:
                n_opt = float(np.exp(v[0]))
                point = FrontierPoint(compute, float(v[1]), n_opt, compute / (6 * n_opt),
                                      "vertex", [int(i) for i in g], best, side)
        if point is None:
            point = FrontierPoint(
                float(table.compute[best]) if len(g) == 1 else compute,
                float(np.min(mean_loss)), float(table.params[best]), float(table.tokens[best]),
                "single" if len(g) == 1 else "min", [int(i) for i in g], best, side,
            )
        points.append(point)
    points.sort(key=lambda p: p.compute)
    if pareto:
        kept, best_loss = [], math.inf
        for p in points:
            if p.loss < best_loss:
                kept.append(p)
                best_loss = p.loss
        points = kept
    return points


def unbracketed_warning(points: list[dict]) -> str | None:
    """One line naming the IsoFLOP sets whose lowest loss is at their smallest or largest size: Hoffmann's approach
    2 needs the minimum inside the set, so those frontier points are upper bounds (the law is fitted through them
    all the same)."""
    sides = {side: [f"{p['compute']:.3g}" for p in points if p.get("edge") == side] for side in ("largest", "smallest")}
    if not any(sides.values()):
        return None
    n = sum(len(v) for v in sides.values())
    where = "; ".join(f"best at the {side} size: {', '.join(v)} FLOPs" for side, v in sides.items() if v)
    return (f"{n} of {len(points)} IsoFLOP sets do not bracket their minimum ({where}): their frontier points are upper "
            f"bounds; train a size beyond that edge (a sweep's [sweep] bracket does it)")


def seed_noise(table: RunTable) -> dict | None:
    """Pooled standard deviation of log loss over groups of runs with the same params and compute (repeats with
    other seeds, as a sweep's repeats make), with its degrees of freedom; None without repeats."""
    params, compute, loss = table.params, table.compute, table.loss
    ok = np.isfinite(params) & np.isfinite(compute) & np.isfinite(loss)
    groups: dict[tuple, list[float]] = {}
    for n, c, l in zip(params[ok], compute[ok], loss[ok]):
        groups.setdefault((round(math.log(n), 6), round(math.log(c), 6)), []).append(math.log(l))
    reps = {k: np.array(g) for k, g in groups.items() if len(g) >= 2}
    dof = sum(len(g) - 1 for g in reps.values())
    if not dof:
        return None
    sigma = math.sqrt(sum(float(np.sum((g - g.mean()) ** 2)) for g in reps.values()) / dof)
    # each group's own scatter, smallest compute first: on small sweeps it grows with the budget
    each = [{"params": math.exp(n), "compute": math.exp(c), "seeds": len(g), "sigma": float(np.std(g, ddof=1))}
            for (n, c), g in sorted(reps.items(), key=lambda kv: kv[0][1])]
    return {"sigma": sigma, "dof": dof, "groups": len(reps), "each": each}
