"""How a sweep shows it is alive, and the one place a finished run is recorded: `Recorder` appends each record to
runs.jsonl and prints its line, whichever launcher trained it. Bars (tqdm) are drawn by the local launchers where
there is a terminal; without one (logs, SLURM output) each finished run prints a line with the ETA, and runs in
progress a line every PROGRESS_EVERY seconds."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from ..files import append_line

PROGRESS_EVERY = 300.0  # seconds between "in progress" lines where there is no terminal (logs, SLURM output)


def eta(left: float, done: float, elapsed: float) -> float:
    """Seconds until `left` more FLOPs are trained at the rate so far (`done` FLOPs in `elapsed` seconds)."""
    return left * elapsed / max(done, 1e-9)


def steps_logged(run_dir: Path) -> int:
    """The last step a run's log.jsonl records (0 where there is none yet): how far a run in another process is."""
    try:
        with open(Path(run_dir) / "log.jsonl", "rb") as f:
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
    loss = f"loss {rec['loss']:.4f}" if rec.get("status") == "ok" else str(rec.get("status", "failed")).upper()
    secs = rec.get("wall_seconds")
    return (f"{spec.id}: {spec.shape.params:,} params, {spec.tokens:,} tokens, {loss}"
            + (f", {secs:.1f}s" if isinstance(secs, (int, float)) else ""))


class Recorder:
    """Appends each finished run's record to runs.jsonl (one write: a crash never leaves half a line) and says so:
    '[k/n] run: params, tokens, loss, seconds; elapsed, ETA' where there is no terminal (or `always`, as SLURM's
    waiting process prints). `specs`: every run of the sweep; `done`: those finished before."""

    def __init__(self, runs_path: Path, specs, done, echo, always: bool = False):
        self.path, self.echo = runs_path, echo
        self.n = len(specs)
        self.count = sum(1 for s in specs if s.id in done)
        self.total = sum(s.compute for s in specs)
        self.before = sum(s.compute for s in specs if s.id in done)
        self.flops = 0.0  # trained by this invocation
        self.t0 = time.time()
        self.show = always or not sys.stderr.isatty()

    def eta(self, in_flight: float = 0.0) -> tuple[float, float]:
        """(seconds elapsed, seconds left) at the rate of this invocation, counting runs in flight by their steps."""
        elapsed = time.time() - self.t0
        done = self.flops + in_flight
        return elapsed, eta(self.total - self.before - done, done, elapsed)

    def __call__(self, spec, rec: dict, in_flight: float = 0.0, note: str = "") -> None:
        append_line(self.path, json.dumps(rec))
        self.count += 1
        self.flops += spec.compute
        if self.show:
            elapsed, left = self.eta(in_flight)
            self.echo(f"[{self.count}/{self.n}] {run_line(spec, rec)}{note}; {elapsed:.0f}s elapsed, ETA {left:.0f}s")

    def in_progress(self, busy, in_flight: float) -> None:
        """The line for runs in progress ([(spec, steps done)]) where there is no terminal."""
        if self.show and busy and self.flops + in_flight > 0:
            elapsed, left = self.eta(in_flight)
            self.echo("  in progress: " + ", ".join(f"{sp.id} step {st:,} of {sp.steps:,} ({st / sp.steps:.0%})"
                                                     for sp, st in busy)
                      + f"; {elapsed:.0f}s elapsed, ETA {left:.0f}s")
