"""MLflow tracking stores: a local `mlruns/` folder (the file store), one experiment or run of it, or a SQLite
tracking database, read through the mlflow package (the `mlflow` extra: mlflow-skinny reads file stores; SQLite
needs the full mlflow). Every metric of every run becomes a curve (its history by step); the run's params give its
size and batch (meta.run_meta_from); runs that failed or were killed are marked so and left out of fits.

A reader never writes to what it reads, and MLflow would: its file store creates `.trash/` in the store, and its
SQL store creates or migrates the schema of the database it opens. So MLflow is given a view instead: for a file
store, a temporary folder of links to the store's experiments; for SQLite, a copy made through SQLite's own backup
from the user's file opened read-only, after its tables are checked to be MLflow's (any other SQLite file is
refused before MLflow sees it).
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from contextlib import contextmanager
from pathlib import Path

from ..errors import InputError
from .curve import Curve
from .meta import run_meta_from

SQLITE_MAGIC = b"SQLite format 3\x00"
MLFLOW_TABLES = {"experiments", "runs", "metrics", "params"}
PAGE = 10_000  # runs per search page: every page is read, however many runs the store holds


def _is_experiment(path: Path) -> bool:
    """An experiment folder of a file store: its meta.yaml names an artifact location, and no run."""
    try:
        text = (path / "meta.yaml").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return "artifact_location:" in text and "run_uuid:" not in text


def is_store(path: Path) -> bool:
    """An MLflow file store (a folder of experiment folders), one experiment of it (with or without runs), one run
    of it (meta.yaml beside metrics/), or a SQLite file."""
    try:
        if path.is_file():
            with open(path, "rb") as f:
                return f.read(16) == SQLITE_MAGIC
        if not path.is_dir():
            return False
        if (path / "meta.yaml").exists() and (path / "metrics").is_dir():
            return True  # a run folder
        return _is_experiment(path) or any(_is_experiment(c) for c in path.iterdir() if c.is_dir())
    except OSError:
        return False


def _sqlite_copy(path: Path, folder: Path) -> Path:
    """A copy of the SQLite file at `path` in `folder`, made with the file opened read-only (immutable: no lock,
    no journal), after checking that it holds MLflow's tables."""
    try:
        src = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    except sqlite3.Error as e:
        raise InputError(f"{path}: cannot open the SQLite file ({e})") from None
    try:
        tables = {r[0] for r in src.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not MLFLOW_TABLES <= tables:
            raise InputError(f"{path}: a SQLite database, but not an MLflow tracking store (it has no "
                             f"{', '.join(sorted(MLFLOW_TABLES - tables))} table)")
        copy = folder / "mlflow.db"
        dst = sqlite3.connect(copy)
        try:
            src.backup(dst)
        finally:
            dst.close()
    except sqlite3.DatabaseError as e:
        raise InputError(f"{path}: not a readable SQLite database ({e})") from None
    finally:
        src.close()
    return copy


def _file_store_view(path: Path, folder: Path) -> tuple[Path, str | None, str | None]:
    """(a root that links to the store's experiments, the experiment asked for, the run asked for): MLflow creates
    its .trash/ in the view, not in the user's store."""
    only_run = only_exp = None
    root = path
    if (path / "metrics").is_dir():  # a run folder: the store is two levels up
        only_run, only_exp, root = path.name, path.parent.name, path.parent.parent
    elif (path / "meta.yaml").exists():  # an experiment folder
        only_exp, root = path.name, path.parent
    view = folder / "store"
    view.mkdir()
    for exp in root.iterdir():
        if exp.is_dir() and _is_experiment(exp) and not exp.name.startswith("."):
            os.symlink(exp.resolve(), view / exp.name, target_is_directory=True)
    return view, only_exp, only_run


@contextmanager
def _client(path: Path):
    """An MlflowClient on a view of the store (see the module's docstring), the experiment and run asked for."""
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise InputError(f"{path}: reading an MLflow store needs the mlflow package: pip install "
                         f"'scalepredict[mlflow]'") from None
    # MLflow 3 refuses file stores unless told they are wanted: reading a user's existing mlruns/ folder is
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    with tempfile.TemporaryDirectory(prefix="scalepredict-mlflow-") as tmp:
        if path.is_file():
            uri, only_exp, only_run = f"sqlite:///{_sqlite_copy(path, Path(tmp))}", None, None
        else:
            view, only_exp, only_run = _file_store_view(path, Path(tmp))
            uri = view.as_uri()
        try:
            client = MlflowClient(tracking_uri=uri)
        except Exception as e:  # mlflow's own exceptions: a missing SQL driver, an out-of-date schema
            raise InputError(f"{path}: not a readable MLflow store ({type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else ''})") from None
        yield client, only_exp, only_run


def _runs(client, exp: str):
    """Every run of an experiment, page after page."""
    token = None
    while True:
        page = client.search_runs([exp], max_results=PAGE, page_token=token)
        yield from page
        token = page.token
        if not token:
            return


def read_store(path: Path, text=None, pattern=None) -> list[Curve]:
    path = Path(path)
    curves = []
    with _client(path) as (client, only_exp, only_run):
        try:
            exps = [e.experiment_id for e in client.search_experiments(max_results=PAGE)]
            if only_exp is not None:
                exps = [e for e in exps if e == only_exp]
            for exp in exps:
                for run in _runs(client, exp):
                    if only_run is None or run.info.run_id == only_run:
                        curves += _run_curves(client, run, path)
        except InputError:
            raise
        except Exception as e:  # mlflow's own errors on a damaged store
            raise InputError(f"{path}: not a readable MLflow store ({type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else ''})") from None
    if not curves:
        raise InputError(f"{path}: an MLflow store with no logged metrics" + (" in this experiment or run"
                                                                             if only_exp or only_run else ""))
    return curves


def _run_curves(client, run, path) -> list[Curve]:
    name = run.info.run_name or run.info.run_id
    meta = run_meta_from(dict(run.data.params))
    if (run.info.status or "").upper() in ("FAILED", "KILLED"):
        meta["state"] = "failed"
    out = []
    for key in run.data.metrics:
        hist = sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: (m.step, m.timestamp))
        if hist:
            out.append(Curve(name, key, [int(m.step) for m in hist], [float(m.value) for m in hist], None,
                             f"{path} (run {run.info.run_id})", meta=dict(meta)))
    return out
