"""`--law auto`: law averaging, with each law scored by a nested backtest inside the fitted range.

Which law extrapolates best is itself an extrapolation (docs/fitting.md), and on real families no single law
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

import numpy as np
from scipy import optimize
from scipy.special import ndtr  # the normal CDF

from .. import __version__, defaults
from ..errors import InputError
from ..frontier import isoflop_groups
from ..runs import RunTable
from . import checks, intervals
from .checkpointrows import finals, is_checkpoint, with_checkpoints
from .laws import get_law, with_floor
from .result import Fit, Member
from .single import fit_single

NEAR_FRACTION = 0.5  # of a set with 4 or more sizes, the half around its minimum (at least 3 sizes)
UNMATCHED = ("no compute law in the average (too few frontier points): the N-D laws read this target's exact FLOPs "
             "as 6ND at their compute-optimal split, which counts no attention FLOPs (a few percent more compute)")


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
    floor: float | None = None  # the irreducible loss fixed at this value (--floor), else fitted
    checkpoints: bool = False  # fitted on the runs' checkpoint rows too (checkpointrows.py), else on finals

    def rows(self, table: RunTable) -> RunTable:
        table = table if self.checkpoints else finals(table)
        return table.subset(near_frontier(table)) if self.near else table

    def fit(self, table: RunTable, **kw) -> Fit:
        sub = self.rows(table)
        law = get_law(self.law) if self.floor is None else with_floor(get_law(self.law), self.floor)
        return fit_single(sub, law, **kw)

    def nested_starts(self, table: RunTable, full: Fit):
        """Starts for a nested fit: the full fit's optimum and every 10th start of the law's grid (the nested
        fits only score the law, and start next to where the full fit ended)."""
        law = full.law
        sub = self.rows(table)
        X = law.features(sub.compute, sub.params, sub.tokens)
        return np.vstack([full.values[None, :], law.starts(X, sub.loss)[::10]])


def candidates(table: RunTable, floor: float | None = None) -> list[Candidate]:
    """The laws of the average; with a `floor` (--floor), each also with its irreducible loss fixed there, so the
    nested backtest weighs the floor known from outside against the floor the runs give; with checkpoint rows, each
    law also fitted on them (named '+ checkpoints'), weighed the same way against the law on finals alone."""
    out = [Candidate("compute", "compute", False)]
    if finals(table).has_params_tokens:
        out += [Candidate("chinchilla (near-frontier runs)", "chinchilla", True),
                Candidate("chinchilla_tied (near-frontier runs)", "chinchilla_tied", True)]
    if floor is not None:
        out += [Candidate(f"{c.name.split(' (')[0]} (floor {floor:g}{', near-frontier runs' if c.near else ''})",
                          c.law, c.near, floor) for c in out]
    if is_checkpoint(table).any():
        out += [Candidate(f"{c.name} + checkpoints", c.law, c.near, c.floor, True) for c in out if c.floor is None]
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
    predicting the held-out groups' score_targets; None where there are too few groups, inf where it cannot fit.
    Groups and targets are the runs' finals; the checkpoints of held-out runs are held out with them."""
    fin = finals(table)
    groups = sorted(isoflop_groups(fin), key=lambda g: float(np.min(fin.compute[g])))
    n_out = max(1, len(groups) // 3)
    if len(groups) - n_out < 3:
        n_out = len(groups) - 3
    if n_out < 1:
        return None
    inner = np.zeros(len(fin), bool)
    for g in groups[:-n_out]:
        inner[g] = True
    outer = fin.subset(~inner)
    try:
        inner_table = table.subset(with_checkpoints(table, inner))
        starts = None if full is None else cand.nested_starts(inner_table, full)
        fit = cand.fit(inner_table, delta=delta, n_bootstrap=0, starts=starts)
        idx = score_targets(outer)
        pred = predict_rows(fit, outer, idx)
    except InputError:
        return math.inf
    err = np.abs(np.log(pred / outer.loss[idx]))
    return float(np.mean(err)) if np.all(np.isfinite(err)) else math.inf


@dataclass
class Entry:
    """A candidate law in the average: its fit, nested score and weight."""

    candidate: Candidate
    fit: Fit
    score: float | None
    weight: float


@dataclass
class LawAverage:
    """Several laws averaged (see the module's docstring), with the face of every fit (result.py)."""

    average_of: list[Entry]
    compute_convention: str | None = None
    warnings: list[str] = field(default_factory=list)
    input_files: list[dict] = field(default_factory=list)

    kind = "average"
    name = "auto"

    @property
    def formula(self) -> str:
        return "average of " + ", ".join(m.candidate.name for m in self.average_of)

    @property
    def members(self) -> list[Member]:
        """Each law averaged, with its weight and nested score."""
        return [Member(m.candidate.name, m.candidate.law, m.fit, m.weight, m.score) for m in self.average_of]

    @property
    def inputs(self) -> tuple[str, ...]:
        nd = any(m.fit.inputs != ("compute",) for m in self.average_of)
        return ("params", "tokens") if nd else ("compute",)

    @property
    def primary(self) -> Fit:
        """The compute-law member: its frontier points are what plots and reports show."""
        return self.average_of[0].fit

    @property
    def data(self):
        return self.primary.data

    @property
    def max_compute(self) -> float:
        return max(m.fit.max_compute for m in self.average_of)

    @property
    def n_points(self) -> int:
        return self.primary.n_points

    @property
    def converged(self) -> bool:
        return all(m.fit.converged for m in self.average_of)

    @property
    def target_convention(self) -> str | None:
        return self.compute_convention

    @property
    def residuals(self) -> np.ndarray:
        d = self.data
        known = np.all(np.isfinite(d.n_params)) and np.all(np.isfinite(d.tokens))
        pred = [p["loss"] for p in self.predict(compute=d.compute, params=d.n_params if known else None,
                                                tokens=d.tokens if known else None)]
        return np.log(np.array(pred) / d.loss)

    def compute_6nd(self, params, tokens):
        return self.primary.compute_6nd(params, tokens)

    def _members_for(self, nd: bool, given_compute: bool) -> list[Entry]:
        """The laws that read a target: where the runs count exact FLOPs, a compute-only target is read by the
        compute law alone (the N-D laws' compute-optimal split counts 6ND), a params-and-tokens target by the N-D
        laws alone (its 6ND compute is not the compute law's)."""
        if self.compute_convention != "exact":
            return self.average_of
        compute_law = [m for m in self.average_of if m.fit.inputs == ("compute",)]
        if not nd:  # where the compute law is not in the average (too few frontier points): the N-D laws
            return compute_law or self.average_of
        if not given_compute:
            return [m for m in self.average_of if m not in compute_law] or self.average_of
        return self.average_of

    def predict(self, compute=None, params=None, tokens=None, level: float = defaults.LEVEL) -> list[dict]:
        if params is not None and tokens is not None and compute is not None:
            n, d = np.atleast_1d(np.asarray(params, float)), np.atleast_1d(np.asarray(tokens, float))
            known = np.isfinite(n) & np.isfinite(d)
            if not known.all():  # targets without params and tokens: at their compute alone
                return self._predict_split(np.atleast_1d(np.asarray(compute, float)), n, d, known, level)
        given = compute is not None
        if compute is None:
            if params is None or tokens is None:
                raise InputError("give --compute, or --params with --tokens")
            compute = 6.0 * np.asarray(params, float) * np.asarray(tokens, float)
        compute = np.atleast_1d(np.asarray(compute, dtype=float))
        nd = params is not None and tokens is not None
        members = self._members_for(nd, given)
        unmatched = not nd and self.compute_convention == "exact" and all(m.fit.inputs != ("compute",)
                                                                          for m in members)
        per = [m.fit.predict(compute=compute, params=params if nd and m.fit.inputs != ("compute",) else None,
                             tokens=tokens if nd and m.fit.inputs != ("compute",) else None, level=level)
               for m in members]
        w = np.array([m.weight for m in members])
        w = w / w.sum() if w.sum() > 0 else np.full(len(members), 1.0 / len(members))
        out = []
        for i in range(len(compute)):
            mu = np.array([np.log(p[i]["loss"]) for p in per])
            lo, hi = mixture_interval(mu, [p[i] for p in per], w, level)
            rec = dict(per[0][i])
            rec.update({"loss": math.exp(float(np.dot(w, mu))), "lower": lo, "upper": hi, "level": level,
                        "params": None if not nd else float(np.atleast_1d(params)[i]),
                        "tokens": None if not nd else float(np.atleast_1d(tokens)[i]),
                        "members": {m.candidate.name: p[i]["loss"] for m, p in zip(members, per)}})
            warned = [p[i]["warning"] for p in per if "warning" in p[i]] + ([UNMATCHED] if unmatched else [])
            if warned:
                rec["warning"] = warned[0]
            out.append(rec)
        return out

    def _predict_split(self, c, n, d, known, level) -> list[dict]:
        out = [None] * len(c)
        for mask, nd in ((known, True), (~known, False)):
            idx = np.flatnonzero(mask)
            if len(idx):
                kw = dict(params=n[idx], tokens=d[idx]) if nd else {}
                for i, p in zip(idx, self.predict(compute=c[idx], level=level, **kw)):
                    out[i] = p
        return out

    def to_dict(self) -> dict:
        return {"format": checks.FIT_FORMAT, "version": __version__, "kind": self.kind, "law": "auto",
                "formula": self.formula, "compute_convention": self.compute_convention, "warnings": self.warnings,
                "inputs": self.input_files, "converged": self.converged, "n_points": self.n_points,
                "candidates": [{"name": m.candidate.name, "law": m.candidate.law, "near_frontier": m.candidate.near,
                                "floor": m.candidate.floor, "checkpoints": m.candidate.checkpoints,
                                "nested_score": m.score if m.score is None or math.isfinite(m.score) else None,
                                "weight": m.weight, "fit": m.fit.to_dict()}
                               for m in self.average_of]}

    @classmethod
    def from_dict(cls, obj: dict, source: str) -> "LawAverage":
        checks.check_format(obj, source)
        cands = checks.records(obj, "candidates", source, min_len=1)
        members = []
        for i, c in enumerate(cands):
            where = f"{source}: candidates[{i}]"
            if not isinstance(c.get("name"), str) or not isinstance(c.get("law"), str):
                raise InputError(f"{where}: needs a name and a law")
            score = checks.number(c, "nested_score", where, optional=True, default=None)
            weight = checks.number(c, "weight", where)
            if weight < 0:
                raise InputError(f"{where}: field 'weight' is negative")
            fit = Fit.from_dict(checks.mapping(c, "fit", where), f"{where}.fit")
            floor = checks.number(c, "floor", where, optional=True, default=None)
            members.append(Entry(Candidate(c["name"], c["law"], bool(c.get("near_frontier")), floor,
                                           bool(c.get("checkpoints"))), fit, score, weight))
        return cls(members, checks.convention(obj, source), checks.strings(obj, "warnings", source),
                   checks.optional_list(obj, "inputs", source) or [])


def mixture_interval(mu, preds, w, level):
    """Quantiles of the mixture of the members' predictive distributions (each a two-piece normal in log loss with
    its own lower and upper scale), or (None, None) where a member has no interval."""
    if not all(p["lower"] is not None and p["upper"] is not None and 0 < p["lower"] and p["upper"] < math.inf
               for p in preds):
        return None, None
    scales = [intervals.split_normal_scales(m, p["lower"], p["upper"], level) for m, p in zip(mu, preds)]
    s_lo = np.maximum([s[0] for s in scales], 1e-9)
    s_hi = np.maximum([s[1] for s in scales], 1e-9)

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


def fit_average(table: RunTable, delta=defaults.HUBER_DELTA, n_bootstrap: int = defaults.BOOTSTRAP, seed: int = 0,
                sources: list | None = None, floor: float | None = None, **_) -> LawAverage | Fit:
    """Fit every candidate law, score each by a nested backtest, and average them (see the module's docstring).
    A candidate that cannot be fitted, that interpolates its points with no floor profile to bound it, or that
    cannot be fitted on the inner runs of the nested backtest is left out, and said; where one law remains
    (compute alone, say: no params and tokens), that law's fit. An InputError naming each law's reason where none
    can be fitted."""
    kw = dict(delta=delta, n_bootstrap=n_bootstrap, seed=seed, sources=sources)
    notes, fitted, errors = [], [], []
    for cand in candidates(table, floor):
        try:
            fitted.append((cand, cand.fit(table, **kw)))
        except InputError as e:
            errors.append(f"{cand.law}: {str(e).split(': ', 1)[-1]}")
            notes.append(f"auto: {cand.name} left out ({errors[-1].split(': ', 1)[-1]})")
    if not fitted:
        raise InputError(f"{', '.join(table.sources)}: no law can be fitted to these runs ({'; '.join(errors)})")
    # a law that interpolates its points stays where its floor's profile bounds it (every floor the points admit)
    free = [(c, f) for c, f in fitted if f.dof >= 1 or (f.profile or {}).get("thetas")] or fitted[:1]
    notes += [f"auto: {c.name} left out (it interpolates its {f.n_points} points and no profile of its floor bounds "
              f"its predictions)" for c, f in fitted if (c, f) not in free]
    entries = [Entry(c, f, nested_score(table, c, delta, f), 0.0) for c, f in free] if len(free) > 1 else \
        [Entry(c, f, None, 1.0) for c, f in free]
    scored = [e for e in entries if e.score is None or math.isfinite(e.score)]
    notes += [f"auto: {e.candidate.name} left out (it cannot be fitted on the runs of the nested backtest)"
              for e in entries if e not in scored]
    if not scored:  # no law can be scored: all of them, equally weighted, and said
        scored = entries
        for e in scored:
            e.score = None
        notes.append("auto: no law could be fitted on the runs of the nested backtest; the laws are weighted "
                     "equally")
    if len(scored) == 1:
        fit = scored[0].fit
        fit.warnings = list(dict.fromkeys(notes + fit.warnings))
        return fit
    for e, w in zip(scored, score_weights([e.score for e in scored])):
        e.weight = w
    warnings = list(table.warnings) + notes
    for e in scored:
        warnings += [f"{e.candidate.name}: {w}" for w in e.fit.warnings if w not in table.warnings]
    return LawAverage(scored, table.convention, warnings, sources or [])


TAU_FLOOR = 0.005  # the weights' temperature never goes below half a percent of mean error (see score_weights)


def score_weights(scores, tau_floor: float = TAU_FLOOR) -> list[float]:
    """Weights from hold-out errors (lower is better): exp(-(score - best) / tau), tau the best score (at least
    `tau_floor`), normalised: a candidate whose error is several times the best one's counts little, near-ties
    share. A score of None (no hold-out possible) gets an equal share alongside the others, infinity none. The law
    average and the task links' forms both weigh their candidates this way."""
    scores = list(scores)
    if any(s is None or not math.isfinite(s) for s in scores):
        w = [1.0 if s is None or math.isfinite(s) else 0.0 for s in scores]
    else:
        best = min(scores)
        tau = max(best, tau_floor)
        w = [math.exp(-(s - best) / tau) for s in scores]
    total = sum(w) or 1.0
    return [x / total for x in w]
