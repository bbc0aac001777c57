"""MLflow tracking stores: a local `mlruns/` folder (the file store), or a SQLite tracking database, read through the
mlflow package (the `mlflow` extra: mlflow-skinny reads file stores; SQLite needs the full mlflow). Every metric of
every run becomes a curve (its history by step); the run's params give its size and batch (meta.run_meta_from);
runs that failed or were killed are marked so and left out of fits.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from .curve import Curve
from .meta import run_meta_from

SQLITE_MAGIC = b"SQLite format 3\x00"


def is_store(path: Path) -> bool:
    """An MLflow file store (a folder whose experiments hold meta.yaml and runs with metrics/), one experiment of it,
    one run of it, or a SQLite file."""
    if path.is_file():
        try:
            with open(path, "rb") as f:
                return f.read(16) == SQLITE_MAGIC
        except OSError:
            return False
    if not path.is_dir():
        return False
    if (path / "meta.yaml").exists() and (path / "metrics").is_dir():
        return True  # a run folder
    return any((p / "meta.yaml").exists() and any(q.is_dir() and (q / "metrics").is_dir() for q in p.iterdir())
               for p in [path, *[c for c in path.iterdir() if c.is_dir()]])


def _client(path: Path):
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise InputError(f"{path}: reading an MLflow store needs the mlflow package: pip install "
                         f"'scalepredict[mlflow]'") from None
    # MLflow 3 refuses file stores unless told they are wanted: reading a user's existing mlruns/ folder is
    import os

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    if path.is_file():
        uri = f"sqlite:///{path.resolve()}"
    else:
        root = path
        # a run folder or an experiment folder: the store is one or two levels up
        if (path / "metrics").is_dir():
            root = path.parent.parent
        elif (path / "meta.yaml").exists():
            root = path.parent
        uri = root.resolve().as_uri()
    try:
        return MlflowClient(tracking_uri=uri), uri
    except Exception as e:  # mlflow raises its own exceptions (a missing SQL driver, a bad URI)
        raise InputError(f"{path}: not a readable MLflow store ({type(e).__name__}: {str(e).splitlines()[0]})") from None


def read_store(path: Path, text=None, pattern=None) -> list[Curve]:
    path = Path(path)
    client, uri = _client(path)
    only_run = path.name if (path / "metrics").is_dir() else None
    only_exp = path.name if (not only_run and path.is_dir() and (path / "meta.yaml").exists()) else None
    try:
        exps = [e.experiment_id for e in client.search_experiments()]
        if only_exp is not None:
            exps = [e for e in exps if e == only_exp]
        curves = []
        for exp in exps:
            for run in client.search_runs([exp], max_results=50000):
                if only_run is not None and run.info.run_id != only_run:
                    continue
                name = run.info.run_name or run.info.run_id
                meta = run_meta_from(dict(run.data.params))
                status = (run.info.status or "").upper()
                if status in ("FAILED", "KILLED"):
                    meta["state"] = "failed"
                for key in run.data.metrics:
                    hist = sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: (m.step, m.timestamp))
                    if hist:
                        curves.append(Curve(name, key, [int(m.step) for m in hist], [float(m.value) for m in hist],
                                            None, f"{path} (run {run.info.run_id})", meta=dict(meta)))
    except InputError:
        raise
    except Exception as e:  # mlflow's own errors on a damaged store
        raise InputError(f"{path}: not a readable MLflow store ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    return curves
