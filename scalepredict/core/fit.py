"""The front door of the loss-law core: fit any law (or the law average, `auto`) to a run table, and read a loss
fit back from its file's content. Both kinds of result share one face (result.py)."""

from __future__ import annotations

from .. import defaults
from ..errors import InputError
from ..runs import RunTable
from . import intervals
from .ensemble import LawAverage, fit_average
from .laws import Law, get_law, with_floor
from .result import Fit
from .single import check_delta, fit_single

__all__ = ["Fit", "LawAverage", "fit_law", "loss_fit_from_dict"]


def fit_law(table: RunTable, law: Law | str = "auto", delta: float | None = defaults.HUBER_DELTA,
            n_bootstrap: int = defaults.BOOTSTRAP, seed: int = 0, all_points: bool = False,
            model_error_per_decade: float = intervals.MODEL_ERROR_PER_DECADE, sources: list | None = None,
            starts=None, floor: float | None = None) -> Fit | LawAverage:
    """Fit `law` (a name from laws.LAWS, a Law, or "auto": the average of the laws the runs support, each weighted by
    a nested backtest) to `table`. `sources`: the fitted files' paths and hashes, kept in the fit file. `floor`: an
    irreducible loss known from outside the table: a single law's is fixed there; the average weighs each law with
    its floor fixed there against the same law fitted freely (laws.with_floor)."""
    check_delta(delta)
    if n_bootstrap < 0:
        raise InputError(f"--bootstrap must be 0 or more, got {n_bootstrap}")
    if law == "auto":
        return fit_average(table, delta=delta, n_bootstrap=n_bootstrap, seed=seed, sources=sources, floor=floor)
    if floor is not None:
        law = with_floor(get_law(law) if isinstance(law, str) else law, floor)
    return fit_single(table, law, delta=delta, n_bootstrap=n_bootstrap, seed=seed, all_points=all_points,
                      model_error_per_decade=model_error_per_decade, sources=sources, starts=starts)


def loss_fit_from_dict(obj: dict, source: str = "fit file") -> Fit | LawAverage:
    """A loss fit (one law, or the law average) from its fit file's content, every field checked."""
    if obj.get("kind") == "average" or obj.get("law") == "auto":
        return LawAverage.from_dict(obj, source)
    return Fit.from_dict(obj, source)
