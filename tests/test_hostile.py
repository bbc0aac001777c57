"""Hostile inputs, property-based (hypothesis): every reader and the fit-file loader, given arbitrary bytes or a
structurally valid file with hostile values, returns a result or raises one InputError, never another exception,
and never modifies its input; the default law on any small table returns a finite fit or one InputError, and its
predictions are finite. The number of examples each property runs is in its @settings."""

import hashlib
import json
import math
import sqlite3
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from scalepredict.core.fit import fit_law
from scalepredict.errors import InputError
from scalepredict.files import dumps_json
from scalepredict.fitfile import fit_from_dict, load_fit
from scalepredict.ingest import load_table, read_curves
from scalepredict.runs import RunTable, load_runs
from tests.conftest import synthetic_compute_runs

SLOW = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
HOSTILE = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30), st.text(max_size=8),
                    st.floats(allow_nan=True, allow_infinity=True), st.lists(st.integers(), max_size=3),
                    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2), st.just([]), st.just({}))


def _digest(path: Path) -> str:
    if path.is_dir():
        return hashlib.sha256(b"".join(p.name.encode() + _digest(p).encode() for p in sorted(path.iterdir())))\
            .hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_or_refuse(fn, *args, **kw):
    try:
        return fn(*args, **kw)
    except InputError as e:
        assert "\n" not in str(e) and str(e)  # one line
        return None


# ---- readers -------------------------------------------------------------------------------------------------


@settings(max_examples=150, **SLOW)
@given(st.binary(max_size=600), st.sampled_from(["runs.jsonl", "runs.csv", "train.log", "metrics.csv",
                                                 "trainer_state.json", "history.jsonl", "events.out.tfevents.1",
                                                 "run-1.wandb", "store.db", "export.csv"]))
def test_every_reader_on_arbitrary_bytes_reads_or_refuses_and_never_writes(data, name):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        before = _digest(Path(tmp))
        _read_or_refuse(read_curves, path)
        _read_or_refuse(load_table, [path])
        assert _digest(Path(tmp)) == before  # nothing written inside or beside the input


NUMBER_TEXT = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.sampled_from(
    ["0", "-1", "1e400", "nan", "inf", "-inf", "", "x", "1,5", "1e-400", "True"]))


@settings(max_examples=120, **SLOW)
@given(st.lists(st.tuples(NUMBER_TEXT, NUMBER_TEXT, NUMBER_TEXT), min_size=1, max_size=6), st.booleans())
def test_run_tables_with_hostile_numbers_give_runs_or_one_error(rows, as_jsonl):
    with tempfile.TemporaryDirectory() as tmp:
        if as_jsonl:
            path = Path(tmp) / "runs.jsonl"
            path.write_text("".join(json.dumps({"compute": c, "params": n, "loss": l}) + "\n" for c, n, l in rows))
        else:
            path = Path(tmp) / "runs.csv"
            path.write_text("compute,params,loss\n" + "".join(f'"{c}","{n}","{l}"\n' for c, n, l in rows))
        table = _read_or_refuse(load_runs, path)
        if table is not None:  # every number that got through is finite and positive
            for col in (table.compute, table.loss):
                assert np.all(np.isfinite(col) & (col > 0))


@settings(max_examples=80, **SLOW)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=8),
       st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=8))
def test_histories_with_hostile_steps_and_values_read_or_refuse(steps, values):
    """W&B histories and their _step of NaN or Infinity (a traceback before)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "history.jsonl"
        path.write_text("".join(json.dumps({"_step": s, "_runtime": 1.0, "val/loss": v}) + "\n"
                                for s, v in zip(steps, values)))
        curves = _read_or_refuse(read_curves, path)
        if curves:
            for c in curves[1]:
                assert all(isinstance(s, int) for s in c.steps)


def test_a_sqlite_file_that_is_not_an_mlflow_store_is_refused_untouched(tmp_path):
    """`ingest other.db` handed any SQLite file to MLflow, which wrote its schema into it (8 KB -> 958 KB)."""
    pytest.importorskip("mlflow")
    db = tmp_path / "other.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE notes (id INTEGER, text TEXT)")
    con.execute("INSERT INTO notes VALUES (1, 'mine')")
    con.commit()
    con.close()
    before = _digest(tmp_path)
    with pytest.raises(InputError, match="not an MLflow tracking store"):
        read_curves(db)
    assert _digest(tmp_path) == before and sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]


def test_reading_an_mlflow_file_store_creates_nothing_inside_it(tmp_path, monkeypatch):
    """Reading an mlruns/ folder created .trash/ inside it."""
    pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient

    store = tmp_path / "mlruns"
    client = MlflowClient(tracking_uri=store.resolve().as_uri())
    rid = client.create_run(client.create_experiment("x"), run_name="a").info.run_id
    client.log_metric(rid, "val/loss", 3.0, step=1)
    (store / ".trash").rmdir()  # as a store copied from elsewhere, without MLflow's trash folder
    before = _digest(store)
    _, curves = read_curves(store)
    assert [c.run for c in curves] == ["a"] and _digest(store) == before and not (store / ".trash").exists()


def test_an_mlflow_sqlite_store_is_read_from_a_copy(tmp_path):
    pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")
    from mlflow.tracking import MlflowClient

    db = tmp_path / "mlflow.db"
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    rid = client.create_run(client.create_experiment("x"), run_name="a").info.run_id
    client.log_metric(rid, "val/loss", 2.5, step=3)
    before = _digest(tmp_path)
    _, curves = read_curves(db)
    assert curves[0].values == [2.5] and _digest(tmp_path) == before


# ---- the fit-file loader -------------------------------------------------------------------------------------


def _fit_files():
    table = RunTable([dict(r, _where="x", params=1e8, tokens=r["compute"] / 6e8)
                      for r in synthetic_compute_runs(n=8)], ["x"])
    return [fit_law(table, law, n_bootstrap=30).to_dict() for law in ("compute", "chinchilla_tied")]


FIT_FILES = _fit_files()


def _paths(obj, prefix=()):
    """Every (path, value) inside a JSON document."""
    yield prefix, obj
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:3]):
            yield from _paths(v, prefix + (i,))


def _set(obj, path, value):
    obj = json.loads(json.dumps(obj))
    target = obj
    for k in path[:-1]:
        target = target[k]
    target[path[-1]] = value
    return obj


@settings(max_examples=250, **SLOW)
@given(st.sampled_from(range(len(FIT_FILES))), st.data(), HOSTILE)
def test_hand_edited_fit_files_load_and_predict_or_give_one_error(which, data, value):
    base = FIT_FILES[which]
    paths = [p for p, _ in _paths(base) if p]
    path = data.draw(st.sampled_from(paths))
    edited = _set(base, path, value)
    fit = _read_or_refuse(fit_from_dict, edited, "fit.json")
    if fit is not None:
        preds = _read_or_refuse(fit.predict, compute=[fit.max_compute * 10])
        if preds:
            dumps_json(preds)  # finite, or an InputError naming the quantity (never a bare ValueError)


@settings(max_examples=60, **SLOW)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_as_a_fit_file_give_one_error(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fit.json"
        path.write_bytes(data)
        _read_or_refuse(load_fit, path)


# ---- the default law on any small table ----------------------------------------------------------------------


@settings(max_examples=60, **SLOW)
@given(st.lists(st.tuples(st.floats(1e15, 1e22), st.floats(1e6, 1e10), st.floats(1.5, 5.0)), min_size=2,
                max_size=6), st.booleans(), st.sampled_from(["6nd", "exact"]))
def test_the_default_law_on_any_small_table_fits_finite_or_says_why(rows, with_nd, convention):
    """A real 4-run table under the default law wrote an infinite nested score and crashed writing fit.json; a
    three-budget sweep's table (exact FLOPs) fitted without the compute law crashed `predict` at a compute target."""
    assume(len({round(math.log10(c), 3) for c, _, _ in rows}) >= 1)
    recs = []
    for i, (c, n, l) in enumerate(rows):
        r = {"run": f"r{i}", "compute": c, "loss": l, "_where": f"row {i}"}
        if with_nd:  # exact FLOPs count attention too: ~10% above 6ND here
            r.update(params=n, tokens=c / ((6 if convention == "6nd" else 6.6) * n), compute_convention=convention)
        recs.append(r)
    fit = _read_or_refuse(fit_law, RunTable(recs, ["t"]), "auto", n_bootstrap=20)
    if fit is None:
        return
    text = dumps_json(fit.to_dict(), "fit.json")  # finite: no inf or NaN anywhere in the file
    again = fit_from_dict(json.loads(text), "fit.json")
    for target in (fit.max_compute * 10, fit.max_compute * 1e3):
        preds = _read_or_refuse(again.predict, compute=[target])
        if preds:
            dumps_json(preds, "the predictions")
            assert preds[0]["lower"] is None or preds[0]["lower"] <= preds[0]["loss"] <= preds[0]["upper"]
