"""The project's promises about installing and testing it, checked on its own files."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    """The shell lines of README.md's first code block (the two commands for a fresh machine)."""
    text = (ROOT / "README.md").read_text()
    block = text.split("```bash", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in block.strip().splitlines() if line.strip()]


def test_ci_runs_the_readmes_install_and_test_commands():
    """README's test command installed .[test] while .ci/run installed .[test,tensorboard]."""
    demo, tests = _readme_commands()[:2]
    assert "scalepredict sweep" in demo and "pytest" in tests
    ci = [line.strip() for line in (ROOT / ".ci/run").read_text().splitlines()
          if line.strip() and not line.lstrip().startswith("#")]
    install, test = (part.strip() for part in tests.split("&&"))
    assert any(line.endswith(install) for line in ci), (install, ci)
    assert any(line.endswith(test) for line in ci), (test, ci)
    assert "-rs" in test  # CI shows why a test was skipped


def test_fitting_predicting_and_plotting_never_import_torch(tmp_path):
    """torch was a required dependency although only training uses it: the log-fitting path works without it."""
    rows = "compute,loss\n" + "".join(f"{c:.6g},{300 * c ** -0.12 + 1.6:.6f}\n" for c in (1e17, 3e17, 1e18, 3e18,
                                                                                        1e19, 3e19, 1e20))
    (tmp_path / "runs.csv").write_text(rows)
    script = """
import sys


class NoTorch:  # any import of torch now fails, as where it is not installed
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("No module named 'torch'")


sys.meta_path.insert(0, NoTorch())
from scalepredict.cli import main
for args in (["fit", "runs.csv", "-o", "fit.json", "--bootstrap", "50"], ["predict", "fit.json", "-c", "1e22"],
             ["plot", "fit.json", "-t", "1e22", "-o", "p.png"], ["backtest", "runs.csv", "--factors", "10"],
             ["report", "fit.json", "-o", "report.md"]):
    try:
        main(args)
    except SystemExit as e:
        assert not e.code, (args, e.code)
assert "torch" not in sys.modules
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-2000:]
