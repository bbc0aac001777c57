"""Random tables and curves through the fitting commands: the randomized complement of hostile_inputs.py.

Run tables of 2-8 runs on 1-4 budgets (plain, duplicated rows, flat or rising losses, losses of 1e-9, compute near
the float limit, params and tokens on only some rows, budget columns, exact FLOPs as a sweep records them) go
through `fit` with a random law, `predict` at hostile targets (0, negative, 1e300, nan, inf), `plot` and
`backtest`; curves of 1-60 points (flat, rising, a NaN, 1e-12 or 1e300 losses, the LR on some lines only) through
`forecast` with valid and invalid schedules, steps and what-ifs. The promise checked: exit 0 or 2, never a
traceback, and every number `forecast --json` prints finite.

    python experiments/fuzz_commands.py [--seed 0] [--tables 80] [--curves 120]

Prints each case that broke the promise, then the totals.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import tempfile
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from scalepredict.cli import cli

KINDS = ("plain", "dup", "flat", "rising", "tiny", "huge", "mixed", "budget", "exact")
LAWS = ("auto", "compute", "chinchilla", "chinchilla_tied", "chinchilla_nd", "power")
SCHEDULES = ("cosine:total=2000,warmup=100,final=0.1", "wsd:total=2000,warmup=0,decay=0.2", "constant:total=2000",
             "linear:total=100", "cosine:total=0", "cosine:total=-5", "cosine:total=2000,warmup=5000",
             "wsd:total=2000,decay=1.5", "cosine:total=1e400", "cosine:total=nan", "foo:total=10", "cosine", "",
             "cosine:total=2000,final=-1", "cosine:total=2000,final=2", "constant:total=3", "wsd:total=2000,decay=0")


def run_table(rng, kind: str) -> list[dict]:
    budgets = np.geomspace(1e15, 1e15 * 10 ** rng.uniform(0.3, 3), int(rng.integers(1, 5)))
    rows = []
    for i in range(int(rng.integers(2, 9))):
        c = float(rng.choice(budgets))
        n = float(10 ** rng.uniform(6, 9))
        r = {"run": f"r{i}", "compute": c, "params": n, "tokens": c / (6 * n),
             "loss": float(2 + 50 * c**-0.1 * np.exp(rng.normal(0, 0.02)))}
        if kind == "dup" and rows:
            r = dict(rows[0], run=f"r{i}")
        elif kind == "flat":
            r["loss"] = 3.0
        elif kind == "rising":
            r["loss"] = 1 + 1e-15 * c
        elif kind == "tiny":
            r["loss"] *= 1e-9
        elif kind == "huge":
            r["compute"] = c * 1e280
        elif kind == "mixed" and i % 2:
            del r["params"], r["tokens"]
        elif kind == "budget":
            r["budget"] = c
        elif kind == "exact":  # a sweep's own records: exact FLOPs, above 6ND by the attention's share
            r.update(budget=c, compute_convention="exact", tokens=c / (6.6 * n))
        rows.append(r)
    return rows


def curve_lines(rng, t: int) -> list[dict]:
    n = int(rng.integers(1, 60))
    steps = np.sort(rng.choice(np.arange(3000), size=n, replace=t % 5 == 0))
    loss = 2 + 5 * (steps + 1.0) ** -0.3 * np.exp(rng.normal(0, 0.01, n))
    kind = t % 6
    if kind == 1:
        loss[:] = 3.0
    elif kind == 2:
        loss = loss[::-1].copy()
    elif kind == 3:
        loss[rng.integers(0, n)] = math.nan
    elif kind == 4:
        loss *= 1e-12
    elif kind == 5:
        loss[rng.integers(0, n)] = 1e300
    lines = []
    for s, v, lr in zip(steps, loss, rng.uniform(0, 1e-3, n)):
        rec = {"step": int(s), "val_loss": float(v)}
        if t % 2 and rng.random() < 0.7:
            rec["lr"] = float(lr)
        lines.append(rec)
    return lines


class Checker:
    def __init__(self):
        self.runner, self.cases, self.broken, self.refused = CliRunner(), 0, [], 0

    def __call__(self, args):
        self.cases += 1
        res = self.runner.invoke(cli, [str(a) for a in args])
        exc = res.exception
        if res.exit_code not in (0, 2) or (exc is not None and not isinstance(exc, SystemExit)):
            self.broken.append(f"{' '.join(map(str, args))}: exit {res.exit_code}, {exc!r}")
        self.refused += res.exit_code == 2
        return res


def forecast_numbers_finite(res) -> bool:
    for f in json.loads(res.stdout)["forecasts"]:
        for k in ("loss", "lower", "upper"):
            v = f.get(k)
            if v is not None and not (isinstance(v, (int, float)) and math.isfinite(v)):
                return False
    return True


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tables", type=int, default=80)
    ap.add_argument("--curves", type=int, default=120)
    args = ap.parse_args(argv)
    rng, pick, check = np.random.default_rng(args.seed), random.Random(args.seed), Checker()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for t in range(args.tables):
            path, fit = tmp / f"t{t}.jsonl", tmp / f"f{t}.json"
            path.write_text("".join(json.dumps(r) + "\n" for r in run_table(rng, KINDS[t % len(KINDS)])))
            law = pick.choice(LAWS)
            if check(["fit", path, "--law", law, "--bootstrap", 20, "-o", fit]).exit_code == 0:
                for at in ("1e20", "0", "-5", "1e300", "nan", "inf"):
                    check(["predict", fit, "-c", at])
                    check(["predict", fit, "--params", at, "--tokens", "1e9"])
                check(["plot", path, "--law", law, "--bootstrap", 20, "-o", tmp / f"p{t}.png"])
            check(["backtest", path, "--law", law, "--bootstrap", 20])
        for t in range(args.curves):
            log = tmp / f"runs/c{t}/log.jsonl"
            log.parent.mkdir(parents=True)
            log.write_text("".join(json.dumps(r) + "\n" for r in curve_lines(rng, t)))
            cmd = ["forecast", log, "--json"]
            if pick.random() < 0.8:
                cmd += ["--schedule", pick.choice(SCHEDULES)]
            if pick.random() < 0.3:
                cmd += ["--at-step", pick.choice([0, 1, 2999, 10**7, 10**18])]
            if pick.random() < 0.3:
                cmd += ["--schedule-what-if", pick.choice(SCHEDULES)]
            if pick.random() < 0.3:
                cmd += ["--law", pick.choice(["annealing", "multipower", "power"])]
            res = check(cmd)
            if res.exit_code == 0 and not forecast_numbers_finite(res):
                check.broken.append(f"{' '.join(map(str, cmd))}: a number that is not finite")
    for line in check.broken:
        print(line)
    print(f"{check.cases} commands ({check.refused} refused in one line, exit 2), {len(check.broken)} broke the "
          f"promise")
    return 1 if check.broken else 0


if __name__ == "__main__":
    raise SystemExit(main())
