"""Laws of a loss curve: the loss at every step of a run under its learning-rate schedule, as laws the project's
solver fits (laws.Law: bounded parameters, a start grid, a vectorized log-prediction). The inputs of a point are
read off its run's schedule (schedules.py), so runs under different schedules share one law.

- annealing (Tissue et al. 2024, "Scaling law with learning rate annealing"): L = L0 + A S1^-alpha - C S2, S1 the
  summed LR so far, S2 the annealing area (a momentum of the LR's decreases).
- multipower (Luo et al. 2025, "A multi-power law for loss curve prediction across learning rate schedules"):
  L = L0 + A S1^-alpha - B sum_k (lr_{k-1} - lr_k) G(lr_k^-gamma S_k(t)), G(x) = 1 - (C x + 1)^-beta, S_k(t) the
  LR summed from step k to t: each decrease of the LR lowers the loss by an amount that saturates as training goes
  on at the lower rate.
- power: L = L0 + A t^-alpha in steps, the schedule ignored: the reference.
"""

from __future__ import annotations

import itertools

import numpy as np

from .laws import Law, Param
from .schedules import areas

KNOTS = 48  # the multi-power law's sum runs over at most this many blocks of each schedule's steps


def _col(theta, i):
    return theta[..., i : i + 1]


def _safe_log(x):
    with np.errstate(all="ignore"):
        return np.log(np.where(x > 0, x, 1e-300))


# ---- power in steps ---------------------------------------------------------------------------------------------


def _power_log_predict(theta, X):
    L0, A, a = _col(theta, 0), _col(theta, 1), _col(theta, 2)
    with np.errstate(all="ignore"):
        return _safe_log(L0 + A * np.exp(-a * X["logt"]))


def _power_starts(X, loss):
    lo = float(np.min(loss))
    return np.array([(f * lo, max(float(np.max(loss)) - f * lo, 1e-3) * np.exp(a * float(np.min(X["logt"]))), a)
                     for f, a in itertools.product((0.0, 0.5, 0.8, 0.9, 0.97), (0.1, 0.3, 0.6, 1.0))])


POWER_STEPS = Law(
    name="power", formula="L = L0 + A t^-alpha", inputs=("step",),
    params=(Param("L0", 0.0, 1e3), Param("A", 1e-9, 1e9, log=True), Param("alpha", 1e-3, 3.0)),
    log_predict=_power_log_predict, starts=_power_starts, doc="a power law in steps; the schedule ignored")


# ---- the LR-annealing law -----------------------------------------------------------------------------------------


def _annealing_log_predict(theta, X):
    L0, A, a, C = (_col(theta, i) for i in range(4))
    with np.errstate(all="ignore"):
        return _safe_log(L0 + A * np.exp(-a * X["logS1"]) - C * X["S2"])


def _annealing_starts(X, loss):
    lo, hi = float(np.min(loss)), float(np.max(loss))
    s1 = float(np.exp(np.min(X["logS1"])))
    return np.array([(f * lo, max(hi - f * lo, 1e-3) * s1 ** a, a, c)
                     for f, a, c in itertools.product((0.0, 0.5, 0.8, 0.9, 0.97), (0.1, 0.3, 0.6, 1.0),
                                                      (0.0, 1e-4, 1e-3))])


ANNEALING = Law(
    name="annealing", formula="L = L0 + A S1^-alpha - C S2", inputs=("schedule",),
    params=(Param("L0", 0.0, 1e3), Param("A", 1e-9, 1e9, log=True), Param("alpha", 1e-3, 3.0),
            Param("C", 0.0, 1e3)),
    log_predict=_annealing_log_predict, starts=_annealing_starts,
    doc="Tissue et al. 2024: the loss at every step under any schedule, from the summed LR and its annealing area")


# ---- the multi-power law ------------------------------------------------------------------------------------------


def multipower_law(blocks: dict) -> Law:
    """The multi-power law over precomputed schedule blocks (multipower_blocks): the rows "drop", "lr", "after"
    (n points x K blocks), indexed by each point's row X["row"]."""
    drop, after = blocks["drop"], blocks["after"]
    log_lr = np.log(np.maximum(blocks["lr"], 1e-12))

    def parts(theta, X):
        """The blocks' arrays (n x K) and the law's two terms, shared by its value and its Jacobian."""
        L0, A, a, B, C, beta, gamma = (_col(theta, i) for i in range(7))
        rows = X["row"]
        d, loge, s = drop[rows], log_lr[rows], after[rows]  # (n, K)
        with np.errstate(all="ignore"):
            cx = C[..., None] * np.exp(-gamma[..., None] * loge) * s  # C lr_k^-gamma S_k(t)
            l1p = np.log1p(cx)
            q = np.exp(-beta[..., None] * l1p)  # 1 - G
            power = A * np.exp(-a * X["logS1"])
            total = L0 + power - B * np.sum(d * (1.0 - q), axis=-1)
        return d, loge, cx, l1p, q, power, total

    def log_predict(theta, X):
        return _safe_log(parts(theta, X)[-1])

    def log_jacobian(theta, X):  # d log L / d (L0, log A, alpha, B, log C, beta, gamma)
        B, beta = _col(theta, 3), _col(theta, 5)
        d, loge, cx, l1p, q, power, total = parts(theta, X)
        with np.errstate(all="ignore"):
            w = d * beta[..., None] * q * cx / (1.0 + cx)  # d (lr drop x G) / d log C, per block
            cols = [np.ones_like(total), power, -X["logS1"] * power, -np.sum(d * (1.0 - q), axis=-1),
                    -B * np.sum(w, axis=-1), -B * np.sum(d * l1p * q, axis=-1), B * np.sum(w * loge, axis=-1)]
            J = np.stack(np.broadcast_arrays(*cols), axis=-1) / total[..., None]
        return np.where(total[..., None] > 0, J, 0.0)

    def starts(X, loss):
        lo, hi = float(np.min(loss)), float(np.max(loss))
        s1 = float(np.exp(np.min(X["logS1"])))
        return np.array([(f * lo, max(hi - f * lo, 1e-3) * s1 ** a, a, b * lo, c, 0.5, 0.5)
                         for f, a, b, c in itertools.product((0.5, 0.8, 0.9, 0.97), (0.2, 0.5), (0.05, 0.2),
                                                             (0.1, 2.0))])

    return Law(
        name="multipower", formula="L = L0 + A S1^-alpha - B sum_k dlr_k G(lr_k^-gamma S_k(t))", inputs=("schedule",),
        params=(Param("L0", 0.0, 1e3), Param("A", 1e-9, 1e9, log=True), Param("alpha", 1e-3, 3.0),
                Param("B", 0.0, 1e3), Param("C", 1e-6, 1e6, log=True), Param("beta", 1e-3, 5.0),
                Param("gamma", 0.0, 3.0)),
        log_predict=log_predict, log_jacobian=log_jacobian, starts=starts,
        doc="Luo et al. 2025: each LR decrease lowers the loss by an amount that saturates with training after it")


def multipower_blocks(segments) -> dict:
    """For every point of every segment (schedule, steps), the multi-power law's sum over that schedule's blocks:
    each block's LR decrease (summed over its steps), its LR (relative to the peak) and the LR summed from the
    block to the point. Rows in the order of the segments' points; blocks padded with zero decreases."""
    rows = {"drop": [], "lr": [], "after": []}
    for lr, steps in segments:
        rel = lr / max(float(np.max(lr)), 1e-300)
        drop = np.maximum(np.concatenate([[0.0], rel[:-1] - rel[1:]]), 0.0)
        edges = np.unique(np.linspace(0, len(rel), min(KNOTS, len(rel)) + 1).astype(int))
        s1 = np.concatenate([[0.0], np.cumsum(rel)])
        k_drop = np.add.reduceat(drop, edges[:-1])
        k_lr = rel[edges[1:] - 1]
        for t in np.asarray(steps, int):
            t = int(np.clip(t, 0, len(rel)))
            before = edges[1:] <= t
            rows["drop"].append(np.where(before, k_drop, 0.0))
            rows["lr"].append(k_lr)
            rows["after"].append(np.where(before, s1[t] - s1[edges[1:] - 1], 0.0))
    width = max(len(r) for r in rows["drop"])
    return {k: np.array([np.pad(r, (0, width - len(r))) for r in v]) for k, v in rows.items()}


def features(segments) -> dict:
    """The inputs of every point of every segment (schedule LR array, steps): log t, log S1, S2, its row."""
    logt, logs1, s2 = [], [], []
    for lr, steps in segments:
        steps = np.asarray(steps, int)
        a1, a2 = areas(lr, steps)
        logt.append(np.log(np.maximum(steps, 1)))
        logs1.append(np.log(np.maximum(a1, 1e-9)))
        s2.append(a2)
    n = sum(len(x) for x in logt)
    return {"logt": np.concatenate(logt), "logS1": np.concatenate(logs1), "S2": np.concatenate(s2),
            "row": np.arange(n)}


CURVE_LAWS = ("annealing", "multipower", "power")
