import math

import numpy as np
import pytest

from scalepredict.errors import InputError
from scalepredict.frontier import frontier
from scalepredict.runs import RunTable, load_runs
from tests.conftest import write_jsonl


def test_jsonl_derives_compute_and_tokens_and_keeps_unknown_keys(tmp_path):
    p = write_jsonl(tmp_path / "r.jsonl", [
        {"run": "a", "params": 1e6, "tokens": 2e7, "loss": 4.0, "lr": 3e-3},
        {"run": "b", "compute": 6e15, "params": 1e7, "loss": 3.5},
    ])
    t = load_runs(p)
    assert t.compute[0] == pytest.approx(6 * 1e6 * 2e7)
    assert t.records[0]["derived"] == ["compute"]
    assert t.tokens[1] == pytest.approx(6e15 / (6 * 1e7))
    assert t.records[1]["derived"] == ["tokens"]
    assert t.records[0]["lr"] == 3e-3
    assert t.names == ["a", "b"]


def test_csv_with_foreign_column_names(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("name,N,D,val_loss\nx,1e6,2e7,4.0\ny,2e6,4e7,3.8\n")
    t = load_runs(p, {"params": "N", "tokens": "D", "loss": "val_loss", "run": "name"})
    assert list(t.loss) == [4.0, 3.8]
    assert t.compute[1] == pytest.approx(6 * 2e6 * 4e7)
    assert t.names == ["x", "y"]


@pytest.mark.parametrize("text, needle", [
    ("", "empty file"),
    ("compute,loss\n", "no runs"),
    ("compute,loss\n1e18,abc\n", "line 2, column 'loss': 'abc' is not a number"),
    ("compute,loss\n1e18,nan\n", "line 2, column 'loss'"),
    ("compute,loss\n1e18,inf\n", "not finite"),
    ("compute,loss\n-1e18,3\n", "compute must be positive"),
    ("compute,loss\n1e18,0\n", "loss must be positive"),
    ("compute,val\n1e18,3\n", "no 'loss' column"),
    ("flops,loss\n1e18,3\n", "needs a 'compute' column"),
    ("compute,loss\n1e18,3,4\n", "line 2: 3 fields"),
])
def test_bad_tables_name_the_fault(tmp_path, text, needle):
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(InputError, match="bad.csv") as e:
        load_runs(p)
    assert needle in str(e.value)


def test_unknown_column_option(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("compute,loss\n1e18,3\n")
    with pytest.raises(InputError, match="no column 'flops' \\(given for compute\\)"):
        load_runs(p, {"compute": "flops"})


def test_bad_json_line_is_named(tmp_path):
    p = tmp_path / "r.jsonl"
    p.write_text('{"compute": 1e18, "loss": 3}\n{"compute": 2e18, "loss": }\n{"compute": 3e18, "loss": 2}\n')
    with pytest.raises(InputError, match="r.jsonl, line 2: not valid JSON"):
        load_runs(p)


def test_unterminated_last_line_is_ignored(tmp_path):
    p = tmp_path / "r.jsonl"
    p.write_text('{"compute": 1e18, "loss": 3}\n{"compute": 2e18, "lo')
    assert len(load_runs(p)) == 1


def test_diverged_runs_are_excluded_and_checkpoints_reduced_to_final(tmp_path):
    p = write_jsonl(tmp_path / "r.jsonl", [
        {"run": "a", "compute": 1e18, "loss": 4.0, "step": 10},
        {"run": "a", "compute": 2e18, "loss": 3.0, "step": 20},
        {"run": "b", "compute": 1e18, "loss": 9.0, "status": "diverged"},
    ])
    t = load_runs(p)
    assert len(t) == 1 and t.loss[0] == 3.0
    assert t.excluded[0]["reason"] == "diverged"


def test_frontier_parabola_vertex_recovers_the_optimum():
    # loss = 3 + 0.2 * (log N - log 1e7)^2 exactly: the vertex is at N = 1e7 with loss 3
    recs = []
    for budget in (1e17, 1e18):
        for n in (2e6, 5e6, 1e7, 3e7, 6e7):
            loss = 3 + 0.2 * (math.log(n) - math.log(1e7)) ** 2 - (0.1 if budget == 1e18 else 0)
            recs.append({"compute": budget, "budget": budget, "params": n, "tokens": budget / (6 * n), "loss": loss,
                         "_where": "x"})
    pts = frontier(RunTable(recs, ["x"]))
    assert [p.method for p in pts] == ["vertex", "vertex"]
    assert pts[0].params == pytest.approx(1e7, rel=1e-6)
    assert pts[0].loss == pytest.approx(3.0, abs=1e-9)  # the exact parabola: its vertex, to float rounding
    assert pts[1].loss == pytest.approx(2.9, abs=1e-9)


def test_a_vertex_within_rounding_of_the_lowest_run_is_that_runs_vertex(monkeypatch):
    """The vertex of a parabola through three points is never above the lowest of them, but numpy/LAPACK builds put
    it a rounding error above (1e-16 relative) for an exact minimum, and local_vertex fell back to the minimum
    (method 'min' instead of 'vertex'). Within 1e-9 relative it is the minimum's vertex; beyond, not a vertex."""
    from scalepredict import frontier as fr

    x = np.log([2e6, 1e7, 3e7])
    y = 3 + 0.2 * (x - math.log(1e7)) ** 2
    monkeypatch.setattr(fr, "vertex", lambda logn, loss: (float(logn[1]), float(loss[1]) * (1 + 2e-16)))
    v = fr.local_vertex(x, y)
    assert v is not None and v[0] == pytest.approx(math.log(1e7)) and v[1] == y[1]
    monkeypatch.setattr(fr, "vertex", lambda logn, loss: (float(logn[1]), float(loss[1]) * (1 + 1e-6)))
    assert fr.local_vertex(x, y) is None  # a real misfit, not rounding: the set's minimum is used


def test_frontier_groups_by_compute_tolerance_and_takes_minimum():
    recs = [{"compute": c, "loss": l, "_where": "x"} for c, l in
            [(1e18, 3.0), (1.05e18, 2.9), (1e19, 2.5), (1e20, 2.6), (1e21, 2.2)]]
    pts = frontier(RunTable(recs, ["x"]))
    # first two grouped (min 2.9), 1e20 is beaten by the cheaper 1e19 run and leaves the Pareto frontier
    assert [p.loss for p in pts] == [2.9, 2.5, 2.2]
    assert [p.method for p in pts] == ["min", "single", "single"]


def test_one_reader_policy_for_a_fit_and_a_resuming_sweep(tmp_path):
    """The sweep's resume path skipped a corrupt middle line (so that run trained again and was appended) while the
    fit's reader refused it, so such a sweep could never finish; a record without `run` was a KeyError traceback."""
    from scalepredict.train.resume import drop_torn_tail, read_finished

    good = '{"run": "a", "compute": 1e18, "loss": 3}\n{"run": "b", "compute": 2e18, "loss": 2.9}\n'
    torn = tmp_path / "torn.jsonl"
    torn.write_text(good + '{"run": "c", "comp')  # a crash mid-write: both readers ignore it
    assert len(load_runs(torn)) == 2 and set(read_finished(torn)) == {"a", "b"}
    assert drop_torn_tail(torn) and torn.read_text() == good  # cut before the next record is appended
    assert not drop_torn_tail(torn)
    corrupt = tmp_path / "corrupt.jsonl"
    corrupt.write_text('{"run": "a", "compute": 1e18, "loss": 3}\n{"run": "b", "comp\n{"run": "c", "compute": 3e18, '
                       '"loss": 2.8}\n')
    for reader in (load_runs, read_finished):
        with pytest.raises(InputError, match="corrupt.jsonl, line 2: not valid JSON"):
            reader(corrupt)
    nameless = tmp_path / "nameless.jsonl"
    nameless.write_text('{"run": "a", "compute": 1e18, "loss": 3}\n{"compute": 2e18, "loss": 2.9}\n')
    with pytest.raises(InputError, match="nameless.jsonl, line 2: a record without 'run'"):
        read_finished(nameless)
