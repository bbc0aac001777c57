"""Which task predictions to trust, and how: the two steps against the direct form, and whether a task can be
predicted at all at these scales.

- Two steps or direct (Krajewski et al. 2025 report that a direct law of accuracy in compute, at a fixed
  tokens-per-parameter ratio, can extrapolate better than two steps): where the runs share one ratio (within
  1.5x; or do not say), both are fitted on the runs below the largest third of the compute and scored on predicting
  the largest third's accuracy; their weights come from those errors as the law average weighs its laws
  (core.ensemble.score_weights), so the data choose between one step and two, per task.
- Predictability (Lourie et al. 2025 find many tasks do not scale predictably; the OLMo ladder paper traces its
  misses to tasks with a high checkpoint-to-checkpoint variance): a task whose noise is more than a third of the
  change the fitted curve makes across the runs cannot be told from noise, and is flagged.
"""

from __future__ import annotations

import math

import numpy as np

from ..core.ensemble import score_weights
from ..core.fit import fit_law
from ..errors import InputError
from .links import fit_link

NOISE_RATIO = 3.0  # a task is predictable where its fitted change across the runs is at least 3x its noise
HOLDOUT = 1 / 3  # the two steps and the direct form are scored on the largest third of the runs by compute
MIN_INNER = 5
RATIO_SPREAD = 1.5  # the direct form (accuracy in compute alone) holds at one tokens-per-parameter ratio


def predictability(signal: float, noise: float | None) -> dict:
    """{"signal", "noise", "predictable"}: the metric's fitted change across the runs against its noise."""
    ok = noise is None or not math.isfinite(noise) or signal >= NOISE_RATIO * noise
    return {"signal": float(signal), "noise": None if noise is None else float(noise), "predictable": bool(ok)}


def inner_step1(table, law: str, seed: int, **fit_kw):
    """Step 1 fitted on the runs below the largest third of the compute (the holdout's), or None where too few."""
    order = np.argsort(table.compute)
    n_out = max(2, int(round(HOLDOUT * len(order))))
    if len(order) - n_out < MIN_INNER:
        return None
    inner = np.zeros(len(order), bool)
    inner[order[:-n_out]] = True
    try:
        return inner, fit_law(table.subset(inner), law, n_bootstrap=0, seed=seed,
                              **{k: v for k, v in fit_kw.items() if k != "n_bootstrap"})
    except InputError:
        return None


def direct_weight(table, ok, acc, chance, form: str, inner_fit, points=None) -> tuple[float, dict | None]:
    """The direct form's weight against the two steps for one metric, from their errors on the largest third of
    the runs (see the module's docstring), and the scores; (0, None) where there is no holdout. `points`: step 2's
    checkpoint points (x, y, run of each) to fit the inner link on, else the runs' final values."""
    if inner_fit is None:
        return 0.0, None
    if table.has_params_tokens:
        ratio = table.tokens[ok] / table.params[ok]
        if ratio.max() > RATIO_SPREAD * ratio.min():
            return 0.0, {"reason": f"the runs' tokens per parameter span {ratio.min():.3g} to {ratio.max():.3g}: "
                                   f"accuracy in compute alone is not one curve"}
    inner, s1 = inner_fit
    fit_in, test = inner & ok, ~inner & ok
    if fit_in.sum() < MIN_INNER or test.sum() < 1:
        return 0.0, None
    names = np.asarray([str(n) for n in table.names], dtype=object)
    try:
        if points is not None:
            x, y, g = points
            keep = np.isin(np.asarray(g, dtype=object), names[fit_in])
            link = fit_link(form, x[keep], y[keep], chance, 0)
        else:
            link = fit_link(form, table.loss[fit_in], acc[fit_in], chance, 0)
        direct = fit_link("sigmoid", -np.log10(table.compute[fit_in]), acc[fit_in], chance, 0)
    except InputError:
        return 0.0, None
    kw = {"compute": table.compute[test]}
    if table.has_params_tokens:
        kw.update(params=table.params[test], tokens=table.tokens[test])
    loss = np.array([p["loss"] for p in s1.predict(**kw)])
    two = float(np.mean(np.abs(link(loss) - acc[test])))
    one = float(np.mean(np.abs(direct(-np.log10(table.compute[test])) - acc[test])))
    w = score_weights([two, one])
    return float(w[1]), {"two_step": two, "direct": one}
