"""The fit file (fit.json): write a Fit, read one back by keyword, with its format version and input hashes.

A fit read back predicts exactly what the fit that wrote it predicted (tests/test_fit.py): parameters, covariance,
bootstrap samples, residual scale, seed noise and the model-error prior are all kept.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from . import __version__, intervals
from .errors import InputError
from .fit import Fit, FitData
from .laws import get_law

FIT_FORMAT = 1  # version 1 files written before compute_convention existed read as "reported"


def _f(x):
    return None if x is None or not np.isfinite(x) else float(x)


def fit_to_dict(fit: Fit) -> dict:
    names = fit.law.names
    boot = None
    if fit.bootstrap is not None:
        boot = {
            "n": int(len(fit.bootstrap)),
            "requested": int(fit.bootstrap_requested),
            "seed": int(fit.seed),
            "quantiles": {n: p.quantiles for n, p in fit.params.items()},
            "samples": fit.bootstrap.tolist(),
        }
    d = fit.data
    return {
        "format": FIT_FORMAT,
        "version": __version__,
        "law": fit.law.name,
        "formula": fit.law.formula,
        "params": {n: {"value": float(v), "stderr": _f(s)} for n, v, s in zip(names, fit.values, fit.stderr)},
        "covariance": None if fit.covariance is None else {"names": names, "matrix": fit.covariance.tolist()},
        "n_points": fit.n_points,
        "dof": fit.dof,
        "x_range": {"compute": [float(d.compute.min()), float(d.compute.max())]},
        "compute_convention": fit.compute_convention,
        "converged": bool(fit.converged),
        "objective": {"loss": "linear" if fit.delta is None else "huber", "delta": fit.delta,
                      "value": float(fit.cost), "space": "log", "n_starts": fit.n_starts},
        "noise_sigma": _f(fit.noise_sigma),
        "seed_noise": fit.seed_noise,
        "model_error_per_decade": fit.model_error_per_decade,
        "at_bound": fit.at_bound,
        "points": [
            {"run": nm, "compute": float(c), "params": _f(n), "tokens": _f(t), "loss": float(l), "residual": float(r)}
            for nm, c, n, t, l, r in zip(d.names, d.compute, d.params, d.tokens, d.loss, fit.residuals)
        ],
        "residuals": [float(r) for r in fit.residuals],
        "frontier": d.frontier,
        "bootstrap": boot,
        "floor_profile": fit.profile,
        "warnings": fit.warnings,
        "inputs": fit.inputs,
    }


def fit_from_dict(obj: dict, source: str = "fit file") -> Fit:
    if obj.get("law") == "auto" and obj.get("format") == FIT_FORMAT:
        from .ensemble import Ensemble

        return Ensemble.from_dict(obj, source)
    try:
        if obj.get("format") != FIT_FORMAT:
            raise InputError(f"{source}: fit file format {obj.get('format')!r} from scalepredict "
                             f"{obj.get('version', '?')}, this version reads format {FIT_FORMAT}; refit")
        law = get_law(obj["law"])
        values = np.array([obj["params"][n]["value"] for n in law.names], dtype=float)
        stderr = np.array([np.nan if obj["params"][n]["stderr"] is None else obj["params"][n]["stderr"]
                           for n in law.names], dtype=float)
        cov = obj.get("covariance")
        pts = obj["points"]

        def column(k):
            return np.array([np.nan if p.get(k) is None else p[k] for p in pts], dtype=float)

        boot = obj.get("bootstrap")
        objective = obj["objective"]
        fit = Fit(
            law=law, values=values, stderr=stderr,
            covariance=None if cov is None else np.array(cov["matrix"], dtype=float),
            data=FitData(column("compute"), column("loss"), column("params"), column("tokens"),
                         [p["run"] for p in pts], obj.get("frontier")),
            residuals=np.array(obj["residuals"], dtype=float), delta=objective["delta"], cost=objective["value"],
            converged=bool(obj["converged"]), noise_sigma=obj.get("noise_sigma"),
            bootstrap=None if not boot else np.array(boot["samples"], dtype=float),
            bootstrap_requested=boot["requested"] if boot else 0, seed=boot["seed"] if boot else 0,
            model_error_per_decade=float(obj.get("model_error_per_decade", intervals.MODEL_ERROR_PER_DECADE)),
            at_bound=list(obj.get("at_bound", [])), warnings=list(obj.get("warnings", [])),
            inputs=list(obj.get("inputs", [])), n_starts=int(objective.get("n_starts", 0)),
            seed_noise=obj.get("seed_noise"), compute_convention=obj.get("compute_convention", "reported"),
            profile=obj.get("floor_profile"),
        )
    except InputError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        raise InputError(f"{source}: not a valid scalepredict fit file ({type(e).__name__}: {e})") from None
    if values.shape != (len(law.names),) or not np.all(np.isfinite(values)):
        raise InputError(f"{source}: not a valid scalepredict fit file (bad parameter values)")
    return fit


def load_fit(path) -> Fit:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read ({e})") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}, line {e.lineno}: not a valid fit file (bad JSON: {e.msg})") from None
    if not isinstance(obj, dict):
        raise InputError(f"{path}: not a valid scalepredict fit file")
    return fit_from_dict(obj, str(path))


def _json_object(path) -> dict | None:
    """The file as one JSON object, or None where it is not one (or cannot be read)."""
    try:
        obj = json.loads(Path(path).read_bytes())
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def is_fit_file(path: Path) -> dict | None:
    """The parsed fit file, or None where `path` is not one: a fit file is one JSON object with `format` and `law`
    (a run table's rows have `loss`, never `law`)."""
    obj = _json_object(path)
    return obj if obj is not None and "format" in obj and "law" in obj and "loss" not in obj else None


def load_capability_file(path):
    """A capability fit (fit-passrate's or fit-tasks' file, told apart by its `kind`), or None where the file is
    another kind."""
    obj = _json_object(path)
    if obj is None or obj.get("kind") not in ("passrate", "tasks"):
        return None
    if obj["kind"] == "passrate":
        from .passrate import PassRateFit

        return PassRateFit.from_dict(obj, str(path))
    from .tasks import TaskFit

    return TaskFit.from_dict(obj, str(path))


def file_digest(path) -> dict:
    h = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return {"path": str(path), "sha256": h}
