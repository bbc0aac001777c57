"""One face for every kind of fit (core/result.py): each law, the law average, the task fit and the pass-rate fit
predicts identically after a save/load round trip through its fit file, and offers the same attributes, so that
no caller asks which kind it holds (scikit-learn's check_estimator, in small)."""

import json

import numpy as np
import pytest

from scalepredict.capability.passrate import PassTable, fit_pass_rate
from scalepredict.capability.tasks import fit_tasks
from scalepredict.core.fit import fit_law
from scalepredict.fitfile import fit_from_dict, load_fit
from scalepredict.runs import RunTable
from tests.test_auto import ladder

FACE = ("kind", "name", "formula", "predict", "max_compute", "compute_convention", "data", "warnings", "to_dict")


def _law(law):
    def make():
        return fit_law(RunTable(ladder("chinchilla", seed=3), ["t"]), law, n_bootstrap=60)
    return make


def _tasks():
    table = RunTable(ladder("chinchilla", seed=4), ["t"])
    acc = 0.25 + 0.7 / (1 + np.exp(4.0 * (table.loss - 2.6)))
    return fit_tasks(table, {"acc_x": acc}, "loss", law="compute", n_boot=40, n_bootstrap=40)


def _passrate():
    rng = np.random.default_rng(0)
    compute = np.array([1e18, 3e18, 1e19, 3e19, 1e20])
    alpha = rng.uniform(0.5, 3.0, 12)
    rate = np.exp(-alpha[None, :] * (compute[:, None] / 1e18) ** -0.3)
    return fit_pass_rate(PassTable([f"m{i}" for i in range(5)], compute, [f"p{j}" for j in range(12)], rate,
                                   "table"), n_boot=100)


KINDS = {"compute": _law("compute"), "power": _law("power"), "chinchilla": _law("chinchilla"),
         "chinchilla_tied": _law("chinchilla_tied"), "auto": _law("auto"), "tasks": _tasks, "passrate": _passrate}


@pytest.fixture(scope="module", params=sorted(KINDS))
def fitted(request):
    return request.param, KINDS[request.param]()


def test_every_kind_offers_the_same_face(fitted):
    _, fit = fitted
    for attr in FACE:
        assert hasattr(fit, attr), attr
    assert fit.kind in ("law", "average", "tasks", "passrate")
    assert np.isfinite(fit.max_compute) and fit.max_compute > 0
    assert len(fit.data.compute) == len(fit.data.loss) > 0


def test_every_kind_predicts_identically_after_a_round_trip(fitted, tmp_path):
    name, fit = fitted
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(fit.to_dict(), allow_nan=False))
    again = load_fit(path)
    assert type(again) is type(fit) and again.kind == fit.kind
    targets = [fit.max_compute * 10, fit.max_compute * 300]
    assert again.predict(compute=targets) == fit.predict(compute=targets)
    assert fit_from_dict(json.loads(path.read_text()), "x").to_dict() == json.loads(path.read_text())


def test_every_kind_predicts_from_params_and_tokens_or_says_why(fitted):
    """--params with --tokens is read by every kind: a law of N and D at those, a compute law at 6ND."""
    _, fit = fitted
    preds = fit.predict(params=[1e9], tokens=[2e10])
    assert preds and all(np.isfinite(p.get("loss", p.get("value", p.get("metric")))) for p in preds)
