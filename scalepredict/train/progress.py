"""How a sweep shows it is alive: the line printed for a finished run, ETAs, how far a run in another process is,
and durations in words. Bars (tqdm) are drawn by the launchers where there is a terminal; without one (logs, SLURM
output) each finished run prints a line with the ETA, and runs in progress a line every PROGRESS_EVERY seconds."""

from __future__ import annotations

import json
from pathlib import Path

PROGRESS_EVERY = 300.0  # seconds between "in progress" lines where there is no terminal (logs, SLURM output)


def eta(left: float, done: float, elapsed: float) -> float:
    """Seconds until `left` more FLOPs are trained at the rate so far (`done` FLOPs in `elapsed` seconds)."""
    return left * elapsed / max(done, 1e-9)


def steps_logged(run_dir: Path) -> int:
    """The last step a run's log.jsonl records (0 where there is none yet): how far a run in another process is."""
    try:
        with open(run_dir / "log.jsonl", "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 1024))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return 0
    for line in reversed(lines):
        try:
            return int(json.loads(line)["step"])
        except (ValueError, KeyError, TypeError):
            continue  # a line cut by the seek, or being written
    return 0


def run_line(spec, rec: dict) -> str:
    """One finished run, as the sweep prints it where there is no progress bar (logs, pipes, SLURM)."""
    loss = f"loss {rec['loss']:.4f}" if rec["status"] == "ok" else rec["status"].upper()
    return f"{spec.id}: {spec.shape.params:,} params, {spec.tokens:,} tokens, {loss}, {rec['wall_seconds']:.1f}s"


def duration(seconds: float) -> str:
    if seconds < 120 * 60:
        return f"{seconds / 60:.1f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
