"""`from scalepredict.fit import fit_law`: the entry point people already use, kept. The loss-law core lives in
scalepredict/core/ (core/fit.py is its front door)."""

from .core.fit import Fit, LawAverage, fit_law

__all__ = ["Fit", "LawAverage", "fit_law"]
