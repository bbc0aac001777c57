"""How fast the command line starts: the wall time of `scalepredict --help` (and of `fit --help`, and of an
argument error) in a fresh process, the best of N, and whether numpy was imported on the way.

    python benchmarks/cli_startup.py [--repeat 10]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

PROBE = ("import sys\nfrom scalepredict.cli import main\ntry:\n    main({argv})\nexcept SystemExit:\n    pass\n"
         "print('numpy' in sys.modules, file=sys.stderr)")


def best_of(argv: list[str], repeat: int) -> tuple[float, bool]:
    times, numpy = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        numpy = r.stderr.strip().splitlines()[-1] == "True"
    return min(times), numpy


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=10)
    a = ap.parse_args()
    t0 = time.perf_counter()
    for _ in range(a.repeat):
        subprocess.run([sys.executable, "-c", "pass"])
    python = (time.perf_counter() - t0) / a.repeat
    print(f"python -c pass: {python * 1000:.0f} ms (the interpreter alone)")
    for argv in (["--help"], ["fit", "--help"], ["predict", "--level", "x", "fit.json"]):
        t, numpy = best_of(argv, a.repeat)
        print(f"scalepredict {' '.join(argv):<32} {t * 1000:6.0f} ms (best of {a.repeat}); numpy imported: {numpy}")


if __name__ == "__main__":
    main()
