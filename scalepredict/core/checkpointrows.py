"""Checkpoint rows in a run table: points taken from before a run's end (annealed.py makes them from the run's
curve), each marked `checkpoint: true` with the run it came from in `checkpoint_of`.

They are extra points of the same loss surface, never targets: IsoFLOP groups, backtest targets and nested-backtest
targets are the runs' finals, and a fit that holds runs out (a backtest, the law average's nested backtest) holds
out their checkpoints with them, so that no run's future leaks into the fit that predicts it.
"""

from __future__ import annotations

import numpy as np

from ..runs import RunTable


def is_checkpoint(table: RunTable) -> np.ndarray:
    """A mask of the table's checkpoint rows."""
    return np.array([bool(r.get("checkpoint")) for r in table.records], bool)


def finals(table: RunTable) -> RunTable:
    """The table without its checkpoint rows (the table itself where it has none)."""
    ck = is_checkpoint(table)
    return table.subset(~ck) if ck.any() else table


def with_checkpoints(table: RunTable, final_mask) -> np.ndarray:
    """A mask over `table` of the finals `final_mask` selects (a mask over finals(table)) and the checkpoints of
    those runs."""
    ck = is_checkpoint(table)
    out = np.zeros(len(table), bool)
    out[np.flatnonzero(~ck)] = np.asarray(final_mask, bool)
    kept = {table.names[i] for i in np.flatnonzero(out)}
    out |= ck & np.array([str(r.get("checkpoint_of")) in kept for r in table.records], bool)
    return out
