"""Replay a set of hostile and unusual inputs through every command, as a new user and a careless script would
give them, and check the promise: a bad input ends in one line on stderr and exit 2 (no traceback), a valid
unusual input gives exit 0 and finite numbers, and no input file is changed.

    python experiments/hostile_inputs.py [--only SUBSTRING] [--json out.json]

Prints one line per input that broke the promise, then the totals.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sqlite3
import sys
import tempfile
from pathlib import Path

from click.testing import CliRunner

from scalepredict.cli import cli

ROWS = [(1e17, 3.2), (3e17, 3.0), (1e18, 2.85), (3e18, 2.72), (1e19, 2.62), (3e19, 2.55)]


def table(rows=ROWS, nd=False, extra=""):
    head = "compute,loss" + (",params,tokens" if nd else "")
    lines = [f"{c:g},{l:g}" + (f",{(c / 120) ** 0.5:g},{(c * 20 / 6) ** 0.5:g}" if nd else "") for c, l in rows]
    return head + "\n" + "\n".join(lines) + "\n" + extra


def history(steps, values):
    return "".join(json.dumps({"_step": s, "_runtime": 1.0, "val/loss": v}) + "\n" for s, v in zip(steps, values))


def fit_file(tmp: Path) -> dict:
    (tmp / "base.csv").write_text(table(nd=True))
    r = CliRunner().invoke(cli, ["fit", str(tmp / "base.csv"), "--law", "compute", "--bootstrap", "40", "-o",
                                 str(tmp / "base.json")])
    assert r.exit_code == 0, r.output
    return json.loads((tmp / "base.json").read_text())


def cases(tmp: Path):
    """(name, files {name: bytes or text}, argv, expect) with expect 'ok' or 'error'."""
    base = fit_file(tmp)
    f = lambda obj: json.dumps(obj)  # noqa: E731

    def edited(path, value):
        obj = json.loads(json.dumps(base))
        t = obj
        for k in path[:-1]:
            t = t[k]
        t[path[-1]] = value
        return f(obj)

    out = []
    bad_tables = {
        "empty": "", "header only": "compute,loss\n", "binary": b"\x00\x01\x02\xff" * 50, "latin-1": b"compute,loss\n\xe9",
        "array of numbers": "[1, 2, 3]", "negative loss": table([(1e17, -1)] + ROWS[1:]),
        "zero compute": table([(0, 3.0)] + ROWS[1:]), "nan loss": table([(1e17, float("nan"))] + ROWS[1:]),
        "inf compute": table([(float("inf"), 3.0)] + ROWS[1:]), "word as number": "compute,loss\n1e17,abc\n",
        "no loss column": "compute,ppl\n1e17,3\n", "fields short": "compute,loss\n1e17\n",
        "one run": table(ROWS[:1]), "two runs": table(ROWS[:2]), "a JSON fit file": f(base),
        "bool loss": '{"compute": 1e17, "loss": true}\n', "jsonl list": "[{\"compute\": 1}]\n",
        "compute 1e400": "compute,loss\n1e400,3\n",
    }
    for name, content in bad_tables.items():
        out.append((f"fit: table {name}", {"t.csv": content}, ["fit", "t.csv"], "error"))
    ok_tables = {
        "three runs": table(ROWS[:3]), "four runs with N, D": table(ROWS[:4], nd=True),
        "five runs with N, D": table(ROWS[:5], nd=True), "BOM and CRLF": "\ufeff" + table().replace("\n", "\r\n"),
        "unterminated last line": table()[:-1], "repeated rows": table(ROWS + ROWS),
        "spaces around numbers": table().replace(",", " , "), "tiny loss": table([(c, l * 1e-6) for c, l in ROWS]),
        "huge compute": table([(c * 1e10, l) for c, l in ROWS]), "unsorted": table(ROWS[::-1]),
        "two with N, D": table(ROWS[:2] + ROWS[3:5], nd=True), "an outlier of 1e300": table([(1e17, 1e300)] + ROWS[1:]),
    }
    for name, content in ok_tables.items():
        out.append((f"fit: table {name}", {"t.csv": content}, ["fit", "t.csv", "--json", "-o", "f.json"], "ok"))
        out.append((f"fit+predict: table {name}", {"t.csv": content},
                    [["fit", "t.csv", "-o", "f.json"], ["predict", "f.json", "-c", "1e22", "--json"]], "ok"))
    options = [
        ["fit", "t.csv", "--huber-delta", "nan"], ["fit", "t.csv", "--huber-delta", "-1"],
        ["fit", "t.csv", "--huber-delta", "inf"], ["fit", "t.csv", "--bootstrap", "-1"],
        ["fit", "t.csv", "--law", "nope"], ["fit", "t.csv", "--seed", "x"], ["fit", "missing.csv"], ["fit", "."],
        ["fit", "t.csv", "--compute-col", "nope"], ["backtest", "t.csv", "--factors", "1"],
        ["backtest", "t.csv", "--factors", "0.5"], ["backtest", "t.csv", "--factors", "x"],
        ["backtest", "t.csv", "--factors", "nan"], ["ingest", "log.txt", "--params", "-5", "-o", "r.jsonl"],
        ["ingest", "log.txt", "--params", "1e6", "--tokens-per-step", "0", "-o", "r.jsonl"],
        ["ingest", "log.txt", "--params", "nan", "-o", "r.jsonl"], ["plot", "t.csv", "-o", "x.txt"],
        ["plot", "t.csv", "-o", "nodir/x.png"], ["report", "missing", "-o", "r.md"],
    ]
    log = "".join(f"step {s}: train loss {3 - s / 1e4:.4f}, val loss {3.1 - s / 1e4:.4f}\n" for s in range(100, 1100, 100))
    for argv in options:
        out.append(("option: " + " ".join(argv[1:]), {"t.csv": table(), "log.txt": log}, argv, "error"))
    for args in (["-c", "0"], ["-c", "-1"], ["-c", "nan"], ["-c", "1e400"], ["-c", "x"], ["--level", "0"],
                 ["--level", "1"], ["--level", "nan"], ["--params", "1e9"], ["--params", "1e9", "--tokens", "-2"]):
        out.append(("predict: " + " ".join(args), {"f.json": f(base)}, ["predict", "f.json", *args], "error"))
    for args in (["-c", "1"], ["-c", "1e40"], ["--params", "1e9", "--tokens", "2e10"], ["-c", "1e22", "--level", "0.5"]):
        out.append(("predict (unusual, valid): " + " ".join(args), {"f.json": f(base)},
                    ["predict", "f.json", *args, "--json"], "ok"))
    fit_edits = {"law unknown": (("law",), "nope"), "params not a dict": (("params",), [1]),
                 "value a string": (("params", "a", "value"), "x"), "points empty": (("points",), []),
                 "residuals wrong length": (("residuals",), [0.1]), "format 99": (("format",), 99),
                 "bootstrap samples ragged": (("bootstrap", "samples"), [[1, 2], [3]]),
                 "covariance 1x1": (("covariance", "matrix"), [[1.0]]), "converged a string": (("converged",), "yes"),
                 "delta negative": (("objective", "delta"), -1), "value nan": (("params", "b", "value"), "NaN"),
                 "at_bound unknown": (("at_bound",), ["zz"]), "convention unknown": (("compute_convention",), "7nd")}
    for name, (path, value) in fit_edits.items():
        out.append((f"predict: fit file {name}", {"f.json": edited(path, value)},
                    ["predict", "f.json", "-c", "1e22"], "error"))
    for name, content in {"not json": "{", "a list": "[]", "not utf-8": b"\xff\xfe{}", "empty": ""}.items():
        out.append((f"predict: fit file {name}", {"f.json": content}, ["predict", "f.json", "-c", "1e22"], "error"))
    out.append(("predict: a folder as fit file", {"d/x": "1"}, ["predict", "d", "-c", "1e22"], "error"))
    out += _logs_and_stores(log) + _sweeps() + _capabilities()
    return out


def _logs_and_stores(log):
    h = lambda steps, vals: history(steps, vals)  # noqa: E731
    return [
        ("ingest: truncated text log (valid)", {"log.txt": log[:-4]}, ["ingest", "log.txt", "--json"], "ok"),
        ("ingest: log with a nan loss at its end", {"log.txt": log + "step 1100: train loss 2.8, val loss nan\n"},
         ["fit", "log.txt", "--params", "1e6", "--tokens-per-step", "1e4"], "error"),
        ("ingest: megatron without validation (warns)", {"m.log": "".join(
            f" iteration {i}/ 1000 | consumed samples: {i} | lm loss: {7 - i / 500:.3E} |\n" for i in range(10, 200, 10))},
         ["ingest", "m.log", "--json"], "ok"),
        ("ingest: history with NaN and inf steps", {"h.jsonl": h([1, float("nan"), float("inf"), 4],
                                                                 [3.0, 2.9, 2.8, 2.7])}, ["ingest", "h.jsonl", "--json"], "ok"),
        ("ingest: history every step NaN", {"h.jsonl": h([float("nan")] * 3, [3.0] * 3)}, ["ingest", "h.jsonl"], "error"),
        ("ingest: a .wandb file of garbage", {"run-x.wandb": b":W&B" + b"\x00" * 3 + b"\xff" * 40},
         ["ingest", "run-x.wandb"], "error"),
        ("ingest: tfevents garbage", {"events.out.tfevents.1": b"\x01\x02" * 30}, ["ingest", "events.out.tfevents.1"],
         "error"),
        ("ingest: a SQLite file that is not MLflow's", {"other.db": "SQLITE"}, ["ingest", "other.db"], "error"),
        ("ingest: an empty folder", {"d/.hidden": "x"}, ["ingest", "d"], "error"),
        ("ingest: a run table", {"t.csv": table()}, ["ingest", "t.csv"], "error"),
    ]


def _sweeps():
    sweep_json = lambda plan: json.dumps({"plan": plan})  # noqa: E731
    good = [{"run": "b0-L1d8-s0", "budget": 1e9, "compute": 1e9, "params": 1000, "tokens": 1e5, "steps": 10}]
    cases = []
    for name, content in {"not json": "{", "not utf-8": b"\xff", "a list": "[]", "plan not a list": '{"plan": 3}',
                          "plan of strings": '{"plan": ["a"]}', "steps a string": sweep_json([dict(good[0], steps="x")]),
                          "run id a path": sweep_json([dict(good[0], run="../x")])}.items():
        cases.append((f"status: sweep.json {name}", {"s/sweep.json": content}, ["status", "s"], "error"))
    cases.append(("status: sweep.json a folder", {"s/sweep.json/x": "1"}, ["status", "s"], "error"))
    cases.append(("status: runs.jsonl a folder", {"s/sweep.json": sweep_json(good), "s/runs.jsonl/x": "1"},
                  ["status", "s"], "error"))
    cases.append(("status: a record with strings (valid)", {"s/sweep.json": sweep_json(good),
                                                             "s/runs/b0-L1d8-s0/record.json": '{"run": 3}'},
                  ["status", "s", "--json"], "ok"))
    for name, content in {"not utf-8": b"name = \"\xff\"", "not toml": "[sweep\n", "unknown key": "foo = 1\n",
                          "negative budget": "[sweep]\nbudgets = [-1]\n", "budget a string": "[sweep]\nbudgets = [\"x\"]\n",
                          "lr zero": "[sweep]\nmin = 1e9\nmax = 1e10\n[train]\nlr = 0\n"}.items():
        cases.append((f"sweep: config {name}", {"c.toml": content}, ["sweep", "--config", "c.toml", "--dry-run"],
                      "error"))
    return cases


def _capabilities():
    rows = lambda models, rate: "model,compute,problem,pass_rate\n" + "".join(  # noqa: E731
        f"m{i},{1e18 * 3 ** i:g},p{j},{rate(i, j)}\n" for i in range(models) for j in range(6))
    return [
        ("fit-passrate: three models, no bootstrap (valid)", {"p.csv": rows(3, lambda i, j: 0.2 + 0.1 * i + 0.01 * j)},
         ["fit-passrate", "p.csv", "--bootstrap", "0", "-t", "1e21", "--json"], "ok"),
        ("fit-passrate: a problem near its ceiling (valid)", {"p.csv": rows(4, lambda i, j: min(1.0, 0.5 + 0.2 * i)
                                                                            if j == 0 else 0.1 + 0.05 * i)},
         ["fit-passrate", "p.csv", "-t", "1e21", "--json"], "ok"),
        ("fit-passrate: a rate of 1.5", {"p.csv": rows(4, lambda i, j: 1.5)}, ["fit-passrate", "p.csv"], "error"),
        ("fit-passrate: --max-compute -1", {"p.csv": rows(4, lambda i, j: 0.3)},
         ["fit-passrate", "p.csv", "--max-compute", "-1"], "error"),
        ("fit-tasks: metric is its own task loss", {"t.csv": "compute,loss,acc\n" + "".join(
            f"{1e17 * 2 ** i:g},{3 - 0.1 * i},{0.3 + 0.05 * i}\n" for i in range(8))},
         ["fit-tasks", "t.csv", "--task-loss", "loss", "-m", "loss"], "error"),
        ("fit-tasks: --chance twice", {"t.csv": "compute,loss,acc\n" + "".join(
            f"{1e17 * 2 ** i:g},{3 - 0.1 * i},{0.3 + 0.05 * i}\n" for i in range(8))},
         ["fit-tasks", "t.csv", "--task-loss", "loss", "-m", "acc", "--chance", "0.25", "--chance", "0.5"], "error"),
        ("fit-tasks: percentages", {"t.csv": "compute,loss,acc\n" + "".join(
            f"{1e17 * 2 ** i:g},{3 - 0.1 * i},{30 + 5 * i}\n" for i in range(8))},
         ["fit-tasks", "t.csv", "--task-loss", "loss", "-m", "acc"], "error"),
    ]


def _digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _finite(obj) -> bool:
    if isinstance(obj, float):
        return math.isfinite(obj)
    if isinstance(obj, dict):
        return all(_finite(v) for v in obj.values())
    if isinstance(obj, list):
        return all(_finite(v) for v in obj)
    return True


def replay(name, files, argvs, expect, tmp: Path) -> str | None:
    """None where the promise held, else why not."""
    folder = Path(tempfile.mkdtemp(dir=tmp))
    for rel, content in files.items():
        p = folder / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if content == "SQLITE":
            con = sqlite3.connect(p)
            con.execute("CREATE TABLE notes (x TEXT)")
            con.commit()
            con.close()
        elif isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)
    inputs = _digest(folder)
    argvs = argvs if isinstance(argvs[0], list) else [argvs]
    import os

    cwd = os.getcwd()
    os.chdir(folder)
    try:
        for argv in argvs:
            r = CliRunner().invoke(cli, argv)
            if r.exception and not isinstance(r.exception, SystemExit):
                return f"{type(r.exception).__name__}: {r.exception}"
            if r.exit_code not in (0, 2):
                return f"exit {r.exit_code}: {r.output[-200:]}"
            if r.exit_code == 2:
                lines = [l for l in r.stderr.splitlines() if l.strip()]
                if expect == "ok" or len(lines) != 1:
                    return f"exit 2 ({len(lines)} line(s)): {r.stderr.strip()[:300]}"
                break
            if "--json" in argv:
                try:
                    doc = json.loads(r.stdout)
                except ValueError:
                    return "--json printed no JSON document"
                if not _finite(doc):
                    return "a non-finite number in the JSON output"
        else:
            if expect == "error":
                return "accepted (exit 0) where one error line was expected"
    finally:
        os.chdir(cwd)
    changed = {k for k, v in inputs.items() if _digest(folder).get(k) != v}
    return f"input changed: {sorted(changed)}" if changed else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        all_cases = [c for c in cases(tmp) if a.only in c[0]]
        broken = []
        for name, files, argv, expect in all_cases:
            why = replay(name, files, argv, expect, tmp)
            if why:
                broken.append({"input": name, "why": why})
                print(f"BROKE  {name}: {why}")
    held = len(all_cases) - len(broken)
    print(f"{held} of {len(all_cases)} inputs held the promise ({sum(c[3] == 'error' for c in all_cases)} bad inputs, "
          f"{sum(c[3] == 'ok' for c in all_cases)} valid unusual ones)")
    if a.json:
        a.json.write_text(json.dumps({"held": held, "total": len(all_cases), "broken": broken}, indent=2) + "\n")
    sys.exit(1 if broken else 0)


if __name__ == "__main__":
    main()
