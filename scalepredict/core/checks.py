"""Reading a fit file back: every field checked for its type, its shape and finiteness, so that a hand-edited or
damaged file is one InputError naming the file and the field (never a TypeError deep inside a prediction). Every
kind of fit (a law, a law average, a task fit, a pass-rate fit) reads its file through these."""

from __future__ import annotations

import math

import numpy as np

from ..errors import InputError
from .laws import Law, get_law

FIT_FORMAT = 1  # version 1 files written before compute_convention existed read as "reported"
CONVENTIONS = ("exact", "6nd", "reported")


def check_format(obj: dict, source: str) -> None:
    """A fit file of another format version is refused with the versions named (every kind of fit file)."""
    if obj.get("format") != FIT_FORMAT:
        raise InputError(f"{source}: fit file format {obj.get('format')!r} from scalepredict "
                         f"{obj.get('version', '?')}; this version reads format {FIT_FORMAT}: refit")


def law_of(obj: dict, source: str) -> Law:
    """The law a fit file names, or an InputError naming the file."""
    try:
        return get_law(obj.get("law"))
    except InputError as e:
        raise InputError(f"{source}: {e}") from None


def _missing(where, key):
    return InputError(f"{where}: field '{key}' is missing")


def _wrong(where, key, want, v):
    return InputError(f"{where}: field '{key}' should be {want}, got {type(v).__name__} {str(v)[:40]!r}")


def number(obj: dict, key: str, where: str, optional: bool = False, default=None) -> float:
    """A finite number (JSON null or absent: `default` where `optional`)."""
    v = obj.get(key) if isinstance(obj, dict) else None
    if v is None:
        if optional:
            return default
        raise _missing(where, key)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _wrong(where, key, "a number", v)
    if not math.isfinite(v):
        raise InputError(f"{where}: field '{key}' is not finite ({v})")
    return float(v)


def boolean(obj: dict, key: str, where: str) -> bool:
    v = obj.get(key)
    if not isinstance(v, bool):
        raise _wrong(where, key, "true or false", v) if key in obj else _missing(where, key)
    return v


def mapping(obj: dict, key: str, where: str) -> dict:
    v = obj.get(key)
    if not isinstance(v, dict):
        raise _wrong(where, key, "an object", v) if key in obj else _missing(where, key)
    return v


def optional_mapping(obj: dict, key: str, where: str) -> dict | None:
    v = obj.get(key)
    if v is None:
        return None
    if not isinstance(v, dict):
        raise _wrong(where, key, "an object or null", v)
    return v


def optional_list(obj: dict, key: str, where: str) -> list | None:
    v = obj.get(key)
    if v is None:
        return None
    if not isinstance(v, list):
        raise _wrong(where, key, "a list or null", v)
    return v


def records(obj: dict, key: str, where: str, min_len: int = 0) -> list[dict]:
    """A list of objects, at least `min_len` long."""
    v = obj.get(key)
    if not isinstance(v, list) or not all(isinstance(x, dict) for x in v):
        raise _wrong(where, key, "a list of objects", v) if key in obj else _missing(where, key)
    if len(v) < min_len:
        raise InputError(f"{where}: field '{key}' is empty")
    return v


def strings(obj: dict, key: str, where: str) -> list[str]:
    v = obj.get(key, [])
    if v is None:
        return []
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise _wrong(where, key, "a list of strings", v)
    return list(v)


def vector(obj: dict, key: str, where: str, length: int | None = None) -> np.ndarray:
    """A list of finite numbers (of `length` where given) as an array."""
    v = obj.get(key)
    if not isinstance(v, list):
        raise _wrong(where, key, "a list of numbers", v) if key in obj else _missing(where, key)
    try:
        arr = np.array(v, dtype=float)
    except (TypeError, ValueError):
        raise _wrong(where, key, "a list of numbers", v) from None
    if arr.ndim != 1 or (length is not None and len(arr) != length):
        raise InputError(f"{where}: field '{key}' should hold {length} numbers, has shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{where}: field '{key}' holds a number that is not finite")
    return arr


def matrix(obj: dict, key: str, where: str, shape: tuple) -> np.ndarray:
    """A list of lists of finite numbers of `shape` (None: any length on that axis) as an array."""
    v = obj.get(key)
    try:
        arr = np.array(v, dtype=float)
    except (TypeError, ValueError):
        raise _wrong(where, key, "a table of numbers", v) from None
    if v is None or arr.ndim != len(shape) or any(s is not None and a != s for a, s in zip(arr.shape, shape)):
        want = " x ".join("n" if s is None else str(s) for s in shape)
        raise InputError(f"{where}: field '{key}' should be a {want} table of numbers, has shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{where}: field '{key}' holds a number that is not finite")
    return arr


def convention(obj: dict, where: str) -> str:
    v = obj.get("compute_convention", "reported")
    if v is None:
        return "reported"
    if v not in CONVENTIONS:
        raise _wrong(where, "compute_convention", " or ".join(CONVENTIONS), v)
    return v


def seed_noise(obj: dict, where: str) -> dict | None:
    sn = optional_mapping(obj, "seed_noise", where)
    if sn is not None:
        number(sn, "sigma", f"{where}: seed_noise")
        number(sn, "dof", f"{where}: seed_noise")
    return sn


def within_bounds(arr, law: Law, where: str, key: str):
    """Each row of `arr` (natural units, law.params order) inside the law's bounds, or an InputError."""
    lo = np.array([p.min for p in law.params])
    hi = np.array([p.max for p in law.params])
    bad = (arr < lo - 1e-12 * np.abs(lo)) | (arr > hi + 1e-12 * np.abs(hi))
    if np.any(bad):
        j = int(np.argwhere(bad)[0][-1])
        raise InputError(f"{where}: field '{key}' holds {law.params[j].name} outside the {law.name} law's bounds "
                         f"[{lo[j]:g}, {hi[j]:g}]")
    return arr


def profile(obj: dict, where: str, law: Law) -> dict | None:
    """The floor's profile likelihood: its parameter, its admitted range and the laws it admits (read back as
    floats, each law inside the bounds)."""
    pr = optional_mapping(obj, "floor_profile", where)
    if pr is None:
        return None
    w = f"{where}: floor_profile"
    if pr.get("param") not in law.names:
        raise _wrong(w, "param", f"a parameter of the {law.name} law", pr.get("param"))
    out = dict(pr)
    for key in ("range", "admit_range"):
        if key in pr:
            rng = vector(pr, key, w, 2)
            if rng[0] > rng[1]:
                raise InputError(f"{w}: field '{key}' runs from {rng[0]} down to {rng[1]}")
            out[key] = rng.tolist()
    if pr.get("thetas"):
        out["thetas"] = within_bounds(matrix(pr, "thetas", w, (None, len(law.params))), law, w, "thetas").tolist()
    return out
