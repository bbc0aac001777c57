"""A learning-rate probe: calibrate the recipe's LR rule before a sweep (docs/recipe.md: a rule can be calibrated
by a small LR probe).

At each probed budget of the plan (by default its smallest and its largest), the compute-optimal guess (the run a
sweep would repeat with other seeds) is trained at the rule's LR times each factor, with everything else as in the
sweep. The best LR at a budget is the vertex of a parabola in log LR through the best factor and its neighbours
(as for model size), else the best factor itself. Across two or more model sizes the recommendation is the line
log lr = log lr_ref + e log(N / lr_ref_params) through the best LRs (least squares): `lr` and `lr_exponent`; with
one size, `lr` alone. Why not only the two smallest budgets: on the CPU demo those (7k-parameter models) want 3x
the rule's LR while the largest (49k) wants 1x, so a probe at the small end alone would miscalibrate the rest.

    scalepredict probe --config cpu-demo [--factors 0.25,0.5,1,2,4] [--at 0,-1]
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..config import Config
from ..errors import InputError
from ..files import SweepFolder, atomic_write_json, output_folder, read_json_object
from ..plan import compute_optimal_run, plan
from .context import SweepContext
from .devices import auto_jobs, pick_device
from .launch import train_specs
from .resume import read_finished, resume

DEFAULT_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)


def probe_specs(cfg: Config, factors, at=(0, -1), vocab_size: int = 256) -> list:
    """The probe's runs: the compute-optimal guess of the budgets at positions `at` of the plan (0 the smallest, -1
    the largest) at lr * factor."""
    specs = plan(cfg, vocab_size)
    every = sorted({sp.budget for sp in specs})
    try:
        budgets = sorted({every[i] for i in at})
    except IndexError:
        raise InputError(f"--at {','.join(map(str, at))}: the plan has {len(every)} budgets (positions 0 to "
                         f"{len(every) - 1}, or -1 for the largest)") from None
    out = []
    for b in budgets:
        centre = compute_optimal_run(cfg, [sp for sp in specs if sp.budget == b and sp.seed == cfg.sweep.seed],
                                     vocab_size)
        out += [replace(centre, lr=centre.lr * f, id=f"{centre.id}-lr{f:g}") for f in factors]
    return out


def best_factor(factors, losses) -> tuple[float, str]:
    """The best LR factor from (factor, loss) pairs, diverged runs given as NaN: the vertex of the parabola in
    log factor through the best factor and its two neighbours where the best is interior, else the best factor."""
    f = np.asarray(factors, dtype=float)
    loss = np.asarray(losses, dtype=float)
    order = np.argsort(f)
    f, loss = f[order], loss[order]
    ok = np.isfinite(loss)
    if not ok.any():
        raise InputError("every probe run diverged: lower [train] lr or the factors")
    i = int(np.nanargmin(np.where(ok, loss, np.nan)))
    if 0 < i < len(f) - 1 and ok[i - 1] and ok[i + 1]:
        x, y = np.log(f[i - 1 : i + 2]), loss[i - 1 : i + 2]
        p0, p1, _ = np.polyfit(x, y, 2)
        if p0 > 0:
            return float(np.exp(np.clip(-p1 / (2 * p0), x[0], x[-1]))), "vertex"
    return float(f[i]), "edge" if i in (0, len(f) - 1) else "best"


PLAUSIBLE_EXPONENT = (-1.0, 0.0)  # wider than any published rule's; outside it a fit of two best LRs is suspect


def recommend(t, per_budget: list[dict]) -> dict:
    """[train] lr (and lr_exponent, given two or more model sizes) from the best LR at each probed budget: the
    least-squares line in log lr against log N, read at lr_ref_params."""
    n = np.log([p["params"] for p in per_budget])
    y = np.log([p["best_lr"] for p in per_budget])
    x = n - math.log(t.lr_ref_params)
    out = {"lr_ref_params": t.lr_ref_params, "edge": any(p["how"] == "edge" for p in per_budget),
           "budgets": per_budget}
    out["warnings"] = []
    if np.ptp(n) > 1e-9:
        e, c = np.polyfit(x, y, 1)
        out.update({"lr": float(np.exp(c)), "lr_exponent": float(e)})
        lo, hi = PLAUSIBLE_EXPONENT
        if not lo <= e <= hi:
            out["warnings"].append(
                f"lr_exponent {e:.3g} is outside {lo:g}..{hi:g}, the range of published LR rules (muP's 1/width ~ "
                f"N^-1/2, OLMo's N^-1/3, DeepSeek's C^-0.125 ~ N^-1/4): with one seed per LR a best LR moves "
                f"with the seed noise, so probe more budgets (--at) before adopting it, and do not extrapolate it "
                f"far beyond the {np.exp(n.min()):,.0f}..{np.exp(n.max()):,.0f} parameters probed")
    else:  # one size: the rule's exponent, the mean shift of its LR
        out["lr"] = float(t.lr * np.exp(np.mean([math.log(p["best_factor"]) for p in per_budget])))
    return out


def run_probe(cfg: Config, out: Path, factors=DEFAULT_FACTORS, at=(0, -1), device: str = "auto",
              jobs: int | str = "auto", echo=print) -> dict:
    from .data import load_corpus

    factors = sorted(float(f) for f in factors)
    if len(factors) < 3 or any(f <= 0 for f in factors) or len(set(factors)) < len(factors):
        raise InputError(f"--factors needs at least 3 distinct positive numbers, got {','.join(map(str, factors))}")
    device = pick_device(device if device != "auto" else cfg.train.device)
    corpus = load_corpus(cfg.data.__dict__)
    specs = probe_specs(cfg, factors, at, corpus.vocab_size)
    if jobs == "auto":
        jobs = auto_jobs(cfg, device)
    folder = SweepFolder(Path(out), "probe.json")
    out, meta_path, runs_path = folder.path, folder.meta, folder.runs
    key = {"config_digest": cfg.digest(), "data": corpus.fingerprint, "runs": [sp.id for sp in specs]}
    with output_folder(out, meta_path.name, "probe", echo):  # a second process here would train every run again
        if meta_path.exists():
            old = read_json_object(meta_path, "an LR probe's file (probe.json)")
            if {k: old.get(k) for k in key} != key:
                raise InputError(f"{out}: a probe of another config, data or factors; use another --out")
        atomic_write_json(meta_path, {**key, "config": cfg.as_dict(), "factors": factors})
        done = resume(folder, specs, echo)
        pending = [sp for sp in specs if sp.id not in done]
        echo(f"LR probe '{cfg.name}': {len(specs)} runs ({len(pending)} to train), factors "
             f"{', '.join(f'{f:g}' for f in factors)} of the rule's LR at {len({sp.budget for sp in specs})} budget(s)")
        train_specs(pending, specs, SweepContext(cfg, corpus, folder, device, echo, jobs))
        done = read_finished(runs_path)
        rows, per_budget = [], []
        for b in sorted({sp.budget for sp in specs}):
            group = [sp for sp in specs if sp.budget == b]
            losses = [done[sp.id].get("loss") if done[sp.id].get("status") == "ok" else None for sp in group]
            losses = [float("nan") if v is None else v for v in losses]
            f_best, how = best_factor(factors, losses)
            per_budget.append({"budget": b, "run": group[0].id.rsplit("-lr", 1)[0], "params": group[0].shape.params,
                               "rule_lr": group[0].lr / factors[0], "best_factor": f_best,
                               "best_lr": group[0].lr / factors[0] * f_best, "how": how,
                               "losses": dict(zip((f"{f:g}" for f in factors), losses))})
            rows += [(sp, done[sp.id]) for sp in group]
        result = recommend(cfg.train, per_budget)
        atomic_write_json(meta_path, {**key, "config": cfg.as_dict(), "factors": factors, "result": result})

    echo(f"{'run':<26} {'params':>9} {'lr':>9} {'loss':>8}")
    for sp, rec in rows:
        loss = f"{rec['loss']:.4f}" if rec.get("status") == "ok" else rec.get("status", "?").upper()
        echo(f"{sp.id:<26} {sp.shape.params:>9,} {sp.lr:>9.3g} {loss:>8}")
    for p in per_budget:
        echo(f"budget {p['budget']:.3g}: best at {p['best_factor']:.3g}x the rule's LR ({p['how']})")
    line = f"recommended: [train] lr = {result['lr']:.3g}"
    if "lr_exponent" in result:
        line += f", lr_exponent = {result['lr_exponent']:.3g}"
    echo(line + f" (lr_ref_params = {cfg.train.lr_ref_params:g}; the config has lr = {cfg.train.lr:g}, "
         f"lr_exponent = {cfg.train.lr_exponent:.3g})")
    if result["edge"]:
        echo("warning: the best LR is at the edge of the factors at some budget: widen --factors and probe again")
    for w in result["warnings"]:
        echo(f"warning: {w}")
    echo(f"wrote {meta_path}")
    return result
