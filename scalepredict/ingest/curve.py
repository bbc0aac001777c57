"""A curve: one metric of one run over steps (and tokens where the log says them)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

SPIKE_FACTOR = 1.3  # a point this far above the running minimum (after the first 10% of steps) is a spike


@dataclass
class Curve:
    run: str
    metric: str
    steps: list
    values: list
    tokens: list | None = None
    source: str = ""
    flags: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)  # what the log says about the run: params, tokens_per_step, compute

    def clean(self) -> "Curve":
        """Sort by step; a repeated step (a resumed run) keeps the later value; flag spikes and divergence."""
        last = {}
        for i, s in enumerate(self.steps):
            last[s] = i
        order = sorted(last.values(), key=lambda i: self.steps[i])
        self.steps = [self.steps[i] for i in order]
        self.values = [self.values[i] for i in order]
        if self.tokens:
            self.tokens = [self.tokens[i] for i in order]
        self.flags = []
        if not any(k in self.metric.lower() for k in ("loss", "ppl", "perplexity")):
            return self  # spikes are a loss notion; lr, epoch and throughput move as they please
        best = math.inf
        start = self.steps[0] + 0.1 * (self.steps[-1] - self.steps[0]) if self.steps else 0
        for s, v in zip(self.steps, self.values):
            if not math.isfinite(v):
                self.flags.append({"step": s, "kind": "diverged", "value": None})
                continue
            if s > start and v > SPIKE_FACTOR * best:
                self.flags.append({"step": s, "kind": "spike", "value": v})
            best = min(best, v)
        return self

    def summary(self) -> dict:
        finite = [v for v in self.values if math.isfinite(v)]
        return {"run": self.run, "metric": self.metric, "n_points": len(self.steps),
                "first_step": self.steps[0] if self.steps else None,
                "last_step": self.steps[-1] if self.steps else None,
                "last_value": self.values[-1] if self.values and math.isfinite(self.values[-1]) else None,
                "min_value": min(finite) if finite else None, "flags": self.flags, "source": self.source}


def to_float(x):
    """A number parsed from a log value (a string or a number), or None where it is none."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v
