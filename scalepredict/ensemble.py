"""`--law auto`: law averaging, with each law scored by a nested backtest inside the fitted range.

Which law extrapolates best is itself an extrapolation (method.md section 3), and on real families no single law
wins: the compute law on the frontier misses where a few budgets leave its floor unidentified, the chinchilla law
misses where runs far from the frontier bend it. Averaging laws whose errors differ is more robust than choosing
one on a noisy score (experiments/real_families.py compares both). The candidates, given the runs' columns:

- `compute`: L = a C^b + c on the compute-efficient frontier;
- with params and tokens for every run, `chinchilla` (L = E + A/N^alpha + B/D^beta) and `chinchilla_tied` (one
  exponent, Gadre et al. 2024), each fitted on the runs near each IsoFLOP set's minimum (near_frontier): the points
  far from the minimum of a wide set are where the law describes the runs worst, and they would pull the fit there.

Each candidate is scored by a nested backtest: fitted on all but the largest third of the IsoFLOP groups (at
least three groups kept), it predicts the held-out groups' best runs (every run, where the groups are single runs);
the score is the mean absolute log error. The prediction is the weighted mean of the candidates' log predictions,
with weights exp(-(score - best) / tau), tau the best score (at least 0.5%): a law whose nested error is several
times the best one's counts for little, near-ties share the weight (scores from two or three held-out groups are
noisy, so no law is chosen outright). The interval is that of the mixture of the candidates' predictive
distributions: each candidate's own interval (bootstrap, scatter, model error), widened by how far the weighted
candidates disagree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from . import defaults, intervals
from .errors import InputError
from .fit import Fit, fit_law
from .frontier import isoflop_groups
from .runs import RunTable

NEAR_FRACTION = 0.5  # of a set with 4 or more sizes, the half around its minimum (at least 3 sizes)


def near_frontier(table: RunTable, fraction: float = NEAR_FRACTION) -> np.ndarray:
    """A mask of the runs near each IsoFLOP set's minimum: of a set with 4 or more distinct sizes, the
    ceil(fraction * sizes) sizes (at least 3) centred on the lowest-loss size; every run of smaller sets."""
    keep = np.zeros(len(table), bool)
    for g in isoflop_groups(table):
        g = np.asarray(g)
        sizes = np.unique(np.round(np.log(table.params[g]), 6))
        if len(sizes) < 4:
            keep[g] = True
            continue
        logn = np.round(np.log(table.params[g]), 6)
        best = int(np.searchsorted(sizes, logn[np.argmin(table.loss[g])]))
        n = max(3, math.ceil(fraction * len(sizes)))
        lo = max(0, min(best - n // 2, len(sizes) - n))
        keep[g] = np.isin(logn, sizes[lo : lo + n])
    return keep


def score_targets(table: RunTable) -> np.ndarray:
    """Indices of the runs a backtest scores: each IsoFLOP group's best run where most groups hold several sizes
    (an IsoFLOP sweep), else every run (a ladder, an over-training sweep: one run per group)."""
    groups = isoflop_groups(table)
    if sum(len(g) >= 3 for g in groups) < len(groups) / 2:
        return np.arange(len(table))
    return np.array([int(np.asarray(g)[np.argmin(table.loss[g])]) for g in groups])


@dataclass
class Candidate:
    name: str
    law: str
    near: bool  # fitted on the runs near each set's minimum (near_frontier), else as the law fits (the frontier)

    def fit(self, table: RunTable, **kw) -> Fit:
        sub = table.subset(near_frontier(table)) if self.near else table
        return fit_law(sub, self.law, **kw)

    def nested_starts(self, table: RunTable, full: Fit):
        """Starts for a nested fit: the full fit's optimum and every 10th start of the law's grid (the nested
        fits only score the law, and start next to where the full fit ended)."""
        law = full.law
        sub = table.subset(near_frontier(table)) if self.near else table
        X = law.features(sub.compute, sub.params, sub.tokens)
        return np.vstack([full.values[None, :], law.starts(X, sub.loss)[::10]])


def candidates(table: RunTable) -> list[Candidate]:
    out = [Candidate("compute", "compute", False)]
    if table.has_params_tokens:
        out += [Candidate("chinchilla (near-frontier runs)", "chinchilla", True),
                Candidate("chinchilla_tied (near-frontier runs)", "chinchilla_tied", True)]
    return out


def predict_rows(fit, table: RunTable, idx) -> np.ndarray:
    """Predicted loss of runs `idx` of `table` by a fit (compute laws at the runs' compute, N-D laws at their
    params and tokens)."""
    idx = np.asarray(idx)
    if fit.law.inputs == ("compute",):
        preds = fit.predict(compute=table.compute[idx])
    else:
        preds = fit.predict(compute=table.compute[idx], params=table.params[idx], tokens=table.tokens[idx])
    return np.array([p["loss"] for p in preds])


def nested_score(table: RunTable, cand: Candidate, delta, full: Fit | None = None) -> float | None:
    """Mean absolute log error of `cand` fitted on all but the largest third of the groups (at least 3 kept),
    predicting the held-out groups' score_targets; None where there are too few groups, inf where it cannot fit."""
    groups = sorted(isoflop_groups(table), key=lambda g: float(np.min(table.compute[g])))
    n_out = max(1, len(groups) // 3)
    if len(groups) - n_out < 3:
        n_out = len(groups) - 3
    if n_out < 1:
        return None
    inner = np.zeros(len(table), bool)
    for g in groups[:-n_out]:
        inner[g] = True
    outer = table.subset(~inner)
    try:
        inner_table = table.subset(inner)
        starts = None if full is None else cand.nested_starts(inner_table, full)
        fit = cand.fit(inner_table, delta=delta, n_bootstrap=0, starts=starts)
        idx = score_targets(outer)
        pred = predict_rows(fit, outer, idx)
    except InputError:
        return math.inf
    err = np.abs(np.log(pred / outer.loss[idx]))
    return float(np.mean(err)) if np.all(np.isfinite(err)) else math.inf


@dataclass
class Member:
    candidate: Candidate
    fit: Fit
    score: float | None
    weight: float


@dataclass
class Ensemble:
    """Several laws averaged (see the module's docstring); predicts like a Fit."""

    members: list[Member]
    table_convention: str | None = None
    warnings: list[str] = field(default_factory=list)
    inputs: list[dict] = field(default_factory=list)
    at_bound: list = field(default_factory=list)  # the members say their own (plots ask an averaged law for none)

    @property
    def law(self):
        nd = any(m.fit.law.inputs != ("compute",) for m in self.members)
        return SimpleNamespace(name="auto", names=[], inputs=("params", "tokens") if nd else ("compute",),
                               formula="average of " + ", ".join(m.candidate.name for m in self.members))

    @property
    def primary(self) -> Fit:
        """The compute-law member: its frontier points are what plots and reports show."""
        return self.members[0].fit

    @property
    def data(self):
        return self.primary.data

    @property
    def max_compute(self) -> float:
        return max(m.fit.max_compute for m in self.members)

    @property
    def n_points(self) -> int:
        return self.primary.n_points

    @property
    def converged(self) -> bool:
        return all(m.fit.converged for m in self.members)

    @property
    def compute_convention(self):
        return self.table_convention

    @property
    def residuals(self) -> np.ndarray:
        d = self.data
        pred = [p["loss"] for p in self.predict(compute=d.compute, params=None if np.any(~np.isfinite(d.params))
                                                 else d.params, tokens=None if np.any(~np.isfinite(d.tokens))
                                                 else d.tokens)]
        return np.log(np.array(pred) / d.loss)

    def compute_6nd(self, params, tokens):
        return self.primary.compute_6nd(params, tokens)

    def predict(self, compute=None, params=None, tokens=None, level: float = defaults.LEVEL) -> list[dict]:
        if params is not None and tokens is not None and compute is not None:
            n, d = np.atleast_1d(np.asarray(params, float)), np.atleast_1d(np.asarray(tokens, float))
            known = np.isfinite(n) & np.isfinite(d)
            if not known.all():  # targets without params and tokens: at their compute alone
                c = np.atleast_1d(np.asarray(compute, float))
                out = [None] * len(c)
                for mask, kw in ((known, lambda m: dict(params=n[m], tokens=d[m])), (~known, lambda m: {})):
                    idx = np.flatnonzero(mask)
                    if len(idx):
                        for i, p in zip(idx, self.predict(compute=c[idx], level=level, **kw(idx))):
                            out[i] = p
                return out
        given_compute = compute
        if compute is None:
            if params is None or tokens is None:
                raise InputError("give --compute, or --params with --tokens")
            compute = 6.0 * np.asarray(params, float) * np.asarray(tokens, float)
        compute = np.atleast_1d(np.asarray(compute, dtype=float))
        nd = params is not None and tokens is not None
        members = self.members
        if self.table_convention == "exact":
            # runs counted in exact FLOPs: a compute-only target is read by the compute law alone (the N-D laws'
            # compute-optimal split counts 6ND), a params-and-tokens target by the N-D laws alone (its 6ND compute is
            # not the compute law's)
            compute_law = [m for m in self.members if m.fit.law.inputs == ("compute",)]
            members = [m for m in self.members if m not in compute_law] if nd and given_compute is None else \
                compute_law if not nd else self.members
        per = []
        for m in members:
            if m.fit.law.inputs == ("compute",):
                per.append(m.fit.predict(compute=compute, level=level))
            elif nd:
                per.append(m.fit.predict(compute=compute, params=params, tokens=tokens, level=level))
            else:  # the compute-optimal split of the N-D law
                per.append(m.fit.predict(compute=compute, level=level))
        w = np.array([m.weight for m in members])
        w = w / w.sum() if w.sum() > 0 else np.full(len(members), 1.0 / len(members))
        out = []
        for i in range(len(compute)):
            mu = np.array([np.log(p[i]["loss"]) for p in per])
            center = float(np.dot(w, mu))
            lo, hi = _mixture_interval(mu, [p[i] for p in per], w, level)
            rec = dict(per[0][i])
            rec.update({"loss": math.exp(center), "lower": lo, "upper": hi, "level": level,
                        "params": None if not nd else float(np.atleast_1d(params)[i]),
                        "tokens": None if not nd else float(np.atleast_1d(tokens)[i]),
                        "members": {m.candidate.name: p[i]["loss"] for m, p in zip(members, per)}})
            out.append(rec)
        return out

    def report(self) -> list[str]:
        lines = [f"law: auto, the weighted average of {len(self.members)} laws' log predictions; weights from a "
                 f"nested backtest inside the fitted range (mean |log error| on the held-out largest groups):"]
        for m in self.members:
            sc = "-" if m.score is None else f"{m.score:.2%}"
            lines.append(f"  {m.candidate.name:<40} weight {m.weight:.2f}  nested score {sc}")
        for m in self.members:
            lines.append("")
            lines += m.fit.report()
        return lines

    def to_dict(self) -> dict:
        from .fitfile import FIT_FORMAT, fit_to_dict
        from . import __version__

        return {"format": FIT_FORMAT, "version": __version__, "law": "auto", "formula": self.law.formula,
                "compute_convention": self.table_convention, "warnings": self.warnings, "inputs": self.inputs,
                "converged": self.converged, "n_points": self.n_points,
                "candidates": [{"name": m.candidate.name, "law": m.candidate.law, "near_frontier": m.candidate.near,
                                "nested_score": m.score, "weight": m.weight, "fit": fit_to_dict(m.fit)}
                               for m in self.members]}

    @classmethod
    def from_dict(cls, obj: dict, source: str) -> "Ensemble":
        from .fitfile import fit_from_dict

        try:
            members = [Member(Candidate(c["name"], c["law"], bool(c["near_frontier"])),
                              fit_from_dict(c["fit"], source), c.get("nested_score"), float(c["weight"]))
                       for c in obj["candidates"]]
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"{source}: not a valid scalepredict fit file ({type(e).__name__}: {e})") from None
        if not members:
            raise InputError(f"{source}: not a valid scalepredict fit file (no candidates)")
        return cls(members, obj.get("compute_convention"), list(obj.get("warnings", [])), list(obj.get("inputs", [])))


def _mixture_interval(mu, preds, w, level):
    """Quantiles of the mixture of the members' predictive distributions (each a two-piece normal in log loss with
    its own lower and upper scale), or (None, None) where a member has no interval."""
    from scipy import optimize
    from scipy.special import ndtr  # the normal CDF

    z = intervals.z_of(level)
    s_lo, s_hi = [], []
    for m, p in zip(mu, preds):
        if p["lower"] is None or p["upper"] is None:
            return None, None
        s_lo.append(max((m - math.log(p["lower"])) / z, 1e-9))
        s_hi.append(max((math.log(p["upper"]) - m) / z, 1e-9))
    s_lo, s_hi = np.array(s_lo), np.array(s_hi)

    def cdf(x):
        # a two-piece normal: the lower scale below the centre, the upper above (each half keeps half the mass)
        below = ndtr((x - mu) / s_lo)
        above = ndtr((x - mu) / s_hi)
        return float(np.dot(w, np.where(x < mu, below, above)))

    span = 10 * float(max(s_lo.max(), s_hi.max())) + float(mu.max() - mu.min()) + 1e-6
    a, b = float(mu.min()) - span, float(mu.max()) + span
    lo = optimize.brentq(lambda x: cdf(x) - (0.5 - level / 2), a, b, xtol=1e-10)
    hi = optimize.brentq(lambda x: cdf(x) - (0.5 + level / 2), a, b, xtol=1e-10)
    return math.exp(lo), math.exp(hi)


def fit_auto(table: RunTable, delta=defaults.HUBER_DELTA, n_bootstrap: int = defaults.BOOTSTRAP, seed: int = 0,
             inputs: list | None = None, **_) -> Ensemble | Fit:
    """Fit every candidate law, score each by a nested backtest, and average them (see the module's docstring).
    Where the runs support one law only (compute alone, no params and tokens), that law's fit."""
    cands = candidates(table)
    if len(cands) == 1:
        return cands[0].fit(table, delta=delta, n_bootstrap=n_bootstrap, seed=seed, inputs=inputs)
    members, warnings = [], list(table.warnings)
    for cand in cands:
        try:
            fit = cand.fit(table, delta=delta, n_bootstrap=n_bootstrap, seed=seed, inputs=inputs)
        except InputError as e:
            if cand.law == "compute":
                raise
            warnings.append(f"auto: {cand.name} left out ({str(e).split(': ', 1)[-1]})")
            continue
        members.append(Member(cand, fit, nested_score(table, cand, delta, fit), 0.0))
    _weigh(members)
    for m in members:
        warnings += [f"{m.candidate.name}: {w}" for w in m.fit.warnings if w not in table.warnings]
    return Ensemble(members, table.convention, warnings, inputs or [])


WEIGHTING = {"mode": "score", "tau_floor": 0.005}  # see _weigh


def _weigh(members: list[Member]) -> None:
    """Equal weights, or (mode "score") weights exp(-(score - best) / tau) with tau the best score (at least
    tau_floor): a law whose nested error is several times the best one's counts little, near-ties share."""
    scores = [m.score for m in members]
    if WEIGHTING["mode"] == "equal" or any(s is None or not math.isfinite(s) for s in scores):
        w = [1.0 if s is None or math.isfinite(s) else 0.0 for s in scores]
    else:
        best = min(scores)
        tau = max(best, WEIGHTING["tau_floor"])
        w = [math.exp(-(s - best) / tau) for s in scores]
    total = sum(w) or 1.0
    for m, x in zip(members, w):
        m.weight = x / total
