"""Every example config in configs/ (the files a user copies and edits) validates and dry-runs; the packaged
defaults load by name."""

import re
from pathlib import Path

import pytest

pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

from scalepredict.cli import cli  # noqa: E402
from scalepredict.config import CONFIG_DIR, load_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "configs").glob("*.toml"))


def _runnable_here(path: Path, tmp_path: Path) -> Path:
    """The config as this machine can dry-run it: where its [data] files are not here (a cluster's corpus), the
    synthetic corpus stands in; everything else (the plan, the launcher) is the file's own."""
    cfg = load_config(str(path))
    text = path.read_text()
    here = Path(cfg.data.path or "").exists() if cfg.data.source != "hf" else Path(cfg.data.dataset).exists()
    if cfg.data.source not in ("stdlib", "synthetic") and not here:
        head, _, rest = re.split(r"^(\[data\])$", text, maxsplit=1, flags=re.M)
        body, sep, tail = rest.partition("\n[")
        text = head + '[data]\nsource = "synthetic"\nsize = 2000000\n' + sep + tail
    out = tmp_path / path.name
    out.write_text(text)
    return out


def test_there_are_example_configs():
    assert {p.name for p in EXAMPLES} >= {"gpu-ladder.toml", "slurm-ladder.toml", "real-corpus.toml",
                                          "own-trainer.toml"}


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_config_validates_and_dry_runs(path, tmp_path):
    cfg = load_config(str(path))
    assert cfg.name and cfg.sweep.ladder()
    here = _runnable_here(path, tmp_path)
    r = CliRunner().invoke(cli, ["sweep", "--config", str(here), "--out", str(tmp_path / "s"), "--dry-run",
                                 "--launcher", "local", "--device", "cpu"])
    assert r.exit_code == 0, r.output + (r.stderr if r.stderr_bytes else "")
    assert "total " in r.output and not (tmp_path / "s").exists()  # a dry run writes nothing


def test_the_packaged_defaults_load_by_name():
    for p in CONFIG_DIR.glob("*.toml"):
        assert load_config(p.stem).name
    assert (ROOT / "configs" / "gpu-ladder.toml").resolve() == (CONFIG_DIR / "gpu-ladder.toml").resolve()
