# SPDX-License-Identifier: MIT
"""deltaprop.sklearn: scikit-learn's conformance suite, equivalence with scikit-learn's MLPs, and use in
scikit-learn's tools. Verified with scikit-learn 1.9.1 and 1.3.2 (the oldest the `sklearn` extra allows;
there the equivalence tests of loss='poisson' and sample weights skip, as its MLPs lack them, and its
parametrize_with_checks needs pytest < 9 or -W ignore::pytest.PytestRemovedIn10Warning)."""
from __future__ import annotations

import os

os.environ.setdefault("SCIPY_ARRAY_API", "1")  # before scipy's first import (also set in conftest.py)

import pytest

pytest.importorskip("sklearn")
pytest.importorskip("scipy")

import pickle
import subprocess
import sys
import unittest
import warnings

import numpy as np
import scipy.sparse
import sklearn
import sklearn.neural_network as skn
from sklearn.base import clone
from sklearn.datasets import load_digits, make_regression
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from deltaprop.sklearn import MLPClassifier, MLPRegressor, from_sklearn

SK_VERSION = tuple(int(p) for p in sklearn.__version__.split(".")[:2])


# ---- scikit-learn's conformance suite ----
# The only check scikit-learn's own MLPs skip (they have no decision_function either).
ALLOWED_SKIPS = ("does not have a decision_function method",)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks([MLPClassifier(max_iter=100), MLPRegressor(max_iter=100)])
def test_sklearn_conformance(estimator, check):
    try:
        check(estimator)
    except unittest.SkipTest as e:
        if any(reason in str(e) for reason in ALLOWED_SKIPS):
            pytest.skip(str(e))
        raise AssertionError(f"check skipped where scikit-learn's MLPs run it: {e}") from None


# ---- equivalence with scikit-learn's MLPs: same data, parameters and initial weights ----
def _digits(n=240):
    X, y = load_digits(return_X_y=True)
    return X[:n] / 16.0, y[:n]


def _problem(kind):
    X, y = _digits()
    if kind == "multiclass":
        return X, y, "c"
    if kind == "binary":
        return X, np.where(y > 4, "big", "small"), "c"  # string labels
    if kind == "multilabel":
        return X, np.stack([y > 4, y % 2 == 0, y == 3], axis=1).astype(int), "c"
    if kind in ("poisson", "poisson2"):
        rng = np.random.default_rng(0)
        Xp = rng.normal(size=(200, 6))
        yp = rng.poisson(np.exp(0.5 * Xp[:, :2] + 0.2)).astype(float)
        return Xp, (yp[:, 0] if kind == "poisson" else yp), "r"
    Xr, yr = make_regression(200, 12, n_targets=1 if kind == "regression" else 3, noise=0.5, random_state=0)
    return Xr, yr / 100.0, "r"


KINDS = ("multiclass", "binary", "multilabel", "regression", "multioutput", "poisson", "poisson2")


def _pair(kind, **params):
    X, y, task = _problem(kind)
    kw = dict(hidden_layer_sizes=(16, 7), activation="tanh", alpha=1e-3, batch_size=50, shuffle=False,
              random_state=0, max_iter=12, learning_rate_init=0.01)
    kw.update(params)
    if kind.startswith("poisson"):
        if SK_VERSION < (1, 7):
            pytest.skip("scikit-learn's MLPRegressor has loss='poisson' since 1.7")
        kw["loss"] = "poisson"
    sk = (skn.MLPClassifier if task == "c" else skn.MLPRegressor)(**kw)
    ours = (MLPClassifier if task == "c" else MLPRegressor)(**kw)
    return X, y, sk, ours


def _fit_both(X, y, sk, ours, **fit):
    if fit.get("sample_weight") is not None and SK_VERSION < (1, 7):
        pytest.skip("scikit-learn's MLPs take sample_weight since 1.7")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # older scikit-learn with newer scipy
        sk.fit(X, y, **fit)
        ours.fit(X, y, **fit)


def _assert_same_model(sk, ours, rtol=1e-10):
    assert ours.n_iter_ == sk.n_iter_
    assert ours.t_ == sk.t_
    assert ours.n_layers_ == sk.n_layers_ and ours.n_outputs_ == sk.n_outputs_
    assert ours.out_activation_ == sk.out_activation_
    np.testing.assert_allclose(ours.loss_, sk.loss_, rtol=rtol)
    for a, b in zip(ours.coefs_ + ours.intercepts_, sk.coefs_ + sk.intercepts_):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.max(np.abs(b)))
    if hasattr(sk, "loss_curve_"):
        np.testing.assert_allclose(ours.loss_curve_, sk.loss_curve_, rtol=rtol)
        assert ours.best_loss_ == pytest.approx(sk.best_loss_, rel=rtol) if sk.best_loss_ is not None else ours.best_loss_ is None
        if sk.validation_scores_ is None:
            assert ours.validation_scores_ is None
        else:
            np.testing.assert_allclose(ours.validation_scores_, sk.validation_scores_, rtol=rtol)
            assert ours.best_validation_score_ == pytest.approx(sk.best_validation_score_, rel=rtol)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("solver", ["lbfgs", "sgd", "adam"])
def test_same_iterates_as_sklearn(kind, solver):
    X, y, sk, ours = _pair(kind, solver=solver)
    _fit_both(X, y, sk, ours)
    _assert_same_model(sk, ours)
    if hasattr(sk, "classes_"):
        np.testing.assert_array_equal(ours.classes_, sk.classes_)
        np.testing.assert_allclose(ours.predict_proba(X), sk.predict_proba(X), rtol=1e-9)
        np.testing.assert_array_equal(ours.predict(X), sk.predict(X))
    else:
        np.testing.assert_allclose(ours.predict(X), sk.predict(X), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    "params",
    [
        dict(solver="sgd", momentum=0.0),
        dict(solver="sgd", nesterovs_momentum=False),
        dict(solver="sgd", learning_rate="invscaling", learning_rate_init=0.2, power_t=0.3),
        dict(solver="sgd", learning_rate="adaptive", learning_rate_init=0.5, n_iter_no_change=1, tol=0.05, max_iter=30),
        dict(solver="adam", beta_1=0.5, beta_2=0.9, epsilon=1e-4, alpha=0.0, activation="relu"),
        dict(solver="adam", activation="logistic", batch_size=64),
        dict(solver="adam", n_iter_no_change=2, tol=0.5, max_iter=50),
        dict(solver="sgd", early_stopping=True, validation_fraction=0.2, max_iter=20),
        dict(solver="adam", early_stopping=True, n_iter_no_change=2, tol=0.05, max_iter=50),
    ],
    ids=lambda p: "-".join(f"{k}={v}" for k, v in p.items()),
)
@pytest.mark.parametrize("kind", ["binary", "multiclass", "multioutput", "poisson"])
def test_same_rules_as_sklearn(kind, params):
    if kind == "poisson" and params.get("learning_rate_init", 0.0) > 0.1:
        params = dict(params, learning_rate_init=0.05)  # exp(z) overflows at 0.5 (scikit-learn's too)
    X, y, sk, ours = _pair(kind, **params)
    _fit_both(X, y, sk, ours)
    _assert_same_model(sk, ours)


@pytest.mark.parametrize("kind", ["multiclass", "regression"])
def test_warm_start_and_partial_fit_as_sklearn(kind):
    X, y, sk, ours = _pair(kind, solver="adam", warm_start=True, max_iter=5)
    _fit_both(X, y, sk, ours)
    _fit_both(X, y, sk, ours)  # warm start: continues the weights, fresh optimizer
    _assert_same_model(sk, ours)
    X, y, sk, ours = _pair(kind, solver="sgd")
    extra = {"classes": np.unique(y)} if kind == "multiclass" else {}
    for _ in range(3):
        sk.partial_fit(X, y, **extra)
        ours.partial_fit(X, y, **extra)
    _assert_same_model(sk, ours)


@pytest.mark.parametrize("kind", ["multiclass", "binary", "regression", "multioutput", "poisson"])
@pytest.mark.parametrize("solver", ["lbfgs", "sgd", "adam"])
def test_sample_weight_as_sklearn(kind, solver):
    X, y, sk, ours = _pair(kind, solver=solver)
    w = np.random.default_rng(0).uniform(0.2, 2.0, X.shape[0])
    _fit_both(X, y, sk, ours, sample_weight=w)
    _assert_same_model(sk, ours)


@pytest.mark.parametrize("kind", ["multiclass", "multioutput", "poisson"])
@pytest.mark.parametrize("weighted", [False, True])
def test_lbfgs_gradient_in_blocks_as_sklearn(kind, weighted, monkeypatch):
    # lbfgs sums its full-batch gradient over blocks of rows (here of 64 rows, the fewest it takes)
    import deltaprop.sklearn as dps

    X, y, sk, ours = _pair(kind, solver="lbfgs")
    n_out = 10 if kind == "multiclass" else 1 if y.ndim == 1 else y.shape[1]
    sizes = [X.shape[1], 16, 7, n_out]
    monkeypatch.setattr(dps, "_GRAD_CHUNK", 50 * sum(sizes))
    assert dps._grad_rows(sizes) == 64  # the least it takes: 4 blocks of the 200 or 240 rows
    w = np.random.default_rng(0).uniform(0.2, 2.0, X.shape[0]) if weighted else None
    _fit_both(X, y, sk, ours, sample_weight=w)
    _assert_same_model(sk, ours)


def test_epochs_run_in_the_native_loop():
    # the Adam state is the network's: one step per batch, continued across the per-epoch calls
    X, y, _, ours = _pair("multiclass", solver="adam")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X, y)
    state = ours.network_.optimizer_state
    assert state["kind"] == "adam" and state["step"] == ours.n_iter_ * -(-X.shape[0] // 50)


@pytest.mark.parametrize(
    "params, calls",
    [
        (dict(solver="adam"), lambda est: 1),
        (dict(solver="sgd", early_stopping=True, max_iter=8), lambda est: 1),
        # a change of learning rate ends a native fit: every epoch (invscaling), each division by 5
        (dict(solver="sgd", learning_rate="invscaling"), lambda est: est.n_iter_),
        (dict(solver="sgd", learning_rate="adaptive", learning_rate_init=0.5, n_iter_no_change=1, tol=0.05,
              max_iter=30), lambda est: 1 + round(np.log(0.5 / est._optimizer.lr) / np.log(5.0))),
    ],
    ids=["adam", "early_stopping", "invscaling", "adaptive"],
)
def test_epochs_between_learning_rate_changes_are_one_native_fit(params, calls, monkeypatch):
    # X, the targets and the weights are checked and converted once per native fit, not per epoch
    import deltaprop as dp

    X, y, sk, ours = _pair("multiclass", **params)
    seen = []
    fit = dp.Network.fit

    def counted(net, *args, **kwargs):
        seen.append(kwargs["epochs"])
        return fit(net, *args, **kwargs)

    monkeypatch.setattr(dp.Network, "fit", counted)
    _fit_both(X, y, sk, ours)
    _assert_same_model(sk, ours)
    assert len(seen) == calls(ours) > 0 and seen[0] == ours.max_iter


@pytest.mark.parametrize("params", [
    dict(solver="sgd", learning_rate="adaptive", learning_rate_init=0.5, n_iter_no_change=1, tol=0.05, max_iter=30),
    dict(solver="adam", early_stopping=True, n_iter_no_change=2, tol=0.05, max_iter=50),
], ids=["adaptive", "early_stopping"])
def test_verbose_prints_as_sklearn(params, capsys):
    X, y, sk, ours = _pair("multiclass", verbose=True, **params)
    printed = []
    for est in (sk, ours):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(X, y)
        printed.append(capsys.readouterr().out)
    assert printed[0].count("\n") > 10 and printed[1] == printed[0]


def test_set_initial_params_and_from_sklearn():
    X, y, sk, ours = _pair("multiclass", solver="sgd", random_state=3)
    _fit_both(X, y, sk, ours)
    # our random draw is scikit-learn's; set_initial_params starts from given weights instead
    X, y, _, again = _pair("multiclass", solver="sgd", random_state=99)
    rs = np.random.RandomState(3)
    coefs, intercepts = [], []
    for n_in, n_out in [(64, 16), (16, 7), (7, 10)]:
        bound = np.sqrt(6.0 / (n_in + n_out))
        coefs.append(rs.uniform(-bound, bound, (n_in, n_out)))
        intercepts.append(rs.uniform(-bound, bound, n_out))
    again.set_initial_params(coefs, intercepts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        again.fit(X, y)
    _assert_same_model(sk, again)
    # from_sklearn: the parameters and (fitted) weights of scikit-learn's estimator
    conv = from_sklearn(sk, max_iter=1, learning_rate_init=1e-300, momentum=0.0)
    assert isinstance(conv, MLPClassifier) and conv.hidden_layer_sizes == (16, 7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        conv.fit(X, y)
    for a, b in zip(conv.coefs_, sk.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    with pytest.raises(ValueError, match="shapes"):
        MLPClassifier(hidden_layer_sizes=(5,)).set_initial_params(coefs, intercepts).fit(X, y)
    with pytest.raises(TypeError):
        from_sklearn(StandardScaler())


# ---- data: sparse, float32, string labels, multi-label ----
@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("solver", ["lbfgs", "sgd", "adam"])
def test_sparse_input_matches_dense(fmt, solver, monkeypatch):
    import deltaprop.sklearn as dps

    monkeypatch.setattr(dps, "_SPARSE_CHUNK", 64 * 60)  # several densified blocks per epoch
    X, y = _digits()
    Xs = scipy.sparse.csr_matrix(X) if fmt == "csr" else scipy.sparse.csc_matrix(X)
    kw = dict(hidden_layer_sizes=(10,), solver=solver, max_iter=6, random_state=0, batch_size=30, shuffle=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        dense = MLPClassifier(**kw).fit(X, y)
        sparse = MLPClassifier(**kw).fit(Xs, y)
    for a, b in zip(sparse.coefs_, dense.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(sparse.predict_proba(Xs), dense.predict_proba(X), rtol=1e-10)


def test_float32_trains_in_float32():
    X, y = _digits()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = MLPClassifier(hidden_layer_sizes=(20,), max_iter=60, learning_rate_init=0.01, random_state=0).fit(X.astype(np.float32), y)
        est64 = MLPClassifier(hidden_layer_sizes=(20,), max_iter=60, learning_rate_init=0.01, random_state=0).fit(X, y)
        forced = MLPRegressor(hidden_layer_sizes=(5,), max_iter=3, dtype="float32").fit(X, y.astype(float))
    assert est.network_.dtype == np.float32 and est.coefs_[0].dtype == np.float32
    assert est64.network_.dtype == np.float64 and est64.coefs_[0].dtype == np.float64
    assert forced.network_.dtype == np.float32
    assert est.predict_proba(X).dtype == np.float32
    assert est.score(X, y) > 0.9 and abs(est.score(X, y) - est64.score(X, y)) < 0.05


def test_string_labels_multilabel_and_proba():
    X, y = _digits()
    labels = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])[y]
    est = MLPClassifier(hidden_layer_sizes=(30,), solver="lbfgs", max_iter=200, random_state=0).fit(X, labels)
    assert set(est.classes_) == set(labels)
    assert est.predict(X).dtype == labels.dtype and est.score(X, labels) > 0.95
    proba = est.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(est.predict_log_proba(X), np.log(proba))
    Y = np.stack([y > 4, y % 2 == 0], axis=1).astype(int)
    ml = MLPClassifier(hidden_layer_sizes=(30,), solver="lbfgs", max_iter=200, random_state=0).fit(X, Y)
    assert ml.out_activation_ == "logistic" and ml.predict(X).shape == Y.shape
    assert ml.score(X, Y) > 0.9


# ---- scikit-learn's tools ----
def _quiet(est):
    return est.set_params(max_iter=20)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_pipeline_gridsearch_cross_val_score():
    X, y = _digits(400)
    pipe = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(20,), max_iter=30, learning_rate_init=0.01, random_state=0))
    pipe.fit(X, y)
    assert pipe.score(X, y) > 0.9
    search = GridSearchCV(pipe, {"mlpclassifier__alpha": [1e-4, 1e-2], "mlpclassifier__solver": ["adam", "lbfgs"]},
                          cv=3, n_jobs=2)
    search.fit(X, y)
    assert search.best_score_ > 0.8 and set(search.best_params_) == {"mlpclassifier__alpha", "mlpclassifier__solver"}
    scores = cross_val_score(MLPRegressor(hidden_layer_sizes=(10,), max_iter=30, random_state=0), *_problem("regression")[:2], cv=3)
    assert scores.shape == (3,) and np.all(np.isfinite(scores))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_clone_pickle_joblib(tmp_path):
    import joblib

    X, y = _digits()
    est = MLPClassifier(hidden_layer_sizes=(12,), max_iter=10, random_state=0, dtype="float32", n_threads=1).fit(X, y)
    c = clone(est)
    assert c.get_params() == est.get_params() and not hasattr(c, "network_")
    for copy in (pickle.loads(pickle.dumps(est)), joblib.load(joblib.dump(est, tmp_path / "m.joblib")[0])):
        np.testing.assert_array_equal(copy.predict_proba(X), est.predict_proba(X))
        # coefs_ are views of the (unpickled) network's parameters again
        assert np.shares_memory(copy.coefs_[0], copy.network_.params)
        assert copy.loss_curve_ == est.loss_curve_


# ---- errors: scikit-learn's, and a failed fit leaves a fitted estimator usable ----
def test_errors():
    X, y = _digits()
    with pytest.raises(NotFittedError):
        MLPClassifier().predict(X)
    with pytest.raises(ValueError, match="alpha"):
        MLPClassifier(alpha=-1.0).fit(X, y)
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        MLPClassifier(hidden_layer_sizes=(3, 0)).fit(X, y)
    with pytest.raises(ValueError, match="dtype"):
        MLPClassifier(dtype="int8").fit(X, y)
    with pytest.raises(ValueError, match="loss"):
        MLPRegressor(loss="huber").fit(X, y)
    with pytest.raises(ValueError, match="classes must be passed"):
        MLPClassifier().partial_fit(X, y)
    assert not hasattr(MLPClassifier(solver="lbfgs"), "partial_fit")
    with pytest.raises(ValueError, match="early_stopping"):
        MLPClassifier(early_stopping=True).partial_fit(X, y, classes=np.unique(y))
    with pytest.raises(ValueError, match="Negative"):
        MLPRegressor().fit(X, y, sample_weight=-np.ones(len(y)))

    est = MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    before = est.predict_proba(X)
    state = {k: v for k, v in vars(est).items()}
    with pytest.raises(ValueError, match="features"):
        est.predict(X[:, :10])
    bad = X.copy()
    bad[3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        est.fit(bad, y)
    with pytest.raises(ValueError, match="classes"):
        est.set_params(warm_start=True).fit(X, np.where(y == 0, 11, y))
    est.set_params(warm_start=False)
    assert set(vars(est)) == set(state)
    assert est.network_ is state["network_"] and est.classes_ is state["classes_"]
    np.testing.assert_array_equal(est.predict_proba(X), before)


def test_import_deltaprop_does_not_import_sklearn_or_scipy():
    code = "import sys, deltaprop; bad = [m for m in ('sklearn', 'scipy') if m in sys.modules]; assert not bad, bad"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_warm_start_across_solvers_and_float32_sample_weights():
    X, y = _digits()
    est = MLPClassifier(solver="lbfgs", max_iter=5, warm_start=True, hidden_layer_sizes=(10,), random_state=0).fit(X, y)
    start = [c.copy() for c in est.coefs_]
    est.set_params(solver="adam").fit(X, y)  # continues lbfgs's weights; starts a loss curve
    assert len(est.loss_curve_) == est.n_iter_ == 5 and not np.allclose(est.coefs_[0], start[0])
    with pytest.raises(ValueError, match="layer sizes"):
        est.set_params(hidden_layer_sizes=(11,)).fit(X, y)
    w = np.random.default_rng(0).uniform(0.0, 2.0, len(y))
    for solver in ("adam", "lbfgs"):
        r32 = MLPRegressor(solver=solver, max_iter=5, hidden_layer_sizes=(10,), random_state=0)
        r32.fit(X.astype(np.float32), y.astype(float), sample_weight=w)
        r64 = MLPRegressor(solver=solver, max_iter=5, hidden_layer_sizes=(10,), random_state=0, shuffle=False)
        r64.fit(X, y.astype(float), sample_weight=w)
        assert r32.network_.dtype == np.float32 and np.isfinite(r32.loss_)
        if SK_VERSION < (1, 7):
            continue  # scikit-learn's MLPs take sample_weight since 1.7
        sk = skn.MLPRegressor(solver=solver, max_iter=5, hidden_layer_sizes=(10,), random_state=0, shuffle=False)
        sk.fit(X, y.astype(float), sample_weight=w)
        assert r64.loss_ == pytest.approx(sk.loss_, rel=1e-10)


BOUNDARY_PARAMS = [
    ("alpha", -1.0), ("alpha", 0.0), ("learning_rate_init", 0.0), ("learning_rate_init", 1e-9),
    ("momentum", 1.0), ("momentum", 1.01), ("validation_fraction", 0.0), ("validation_fraction", 1.0),
    ("beta_1", 0.0), ("beta_1", 1.0), ("beta_2", 1.0), ("epsilon", 0.0), ("n_iter_no_change", 0),
    ("n_iter_no_change", np.inf), ("max_iter", 0), ("batch_size", 0), ("batch_size", "x"),
    ("hidden_layer_sizes", 0), ("hidden_layer_sizes", (3, 0)), ("hidden_layer_sizes", []),
    ("hidden_layer_sizes", np.array([4, 3])), ("activation", "softmax"), ("solver", "newton"),
    ("learning_rate", "x"), ("shuffle", "no"), ("verbose", 0), ("random_state", "x"),
    ("random_state", np.random.RandomState(0)), ("power_t", -1.0), ("tol", -1.0), ("max_fun", 0),
    ("warm_start", "yes"), ("nesterovs_momentum", None), ("early_stopping", np.bool_(False)),
]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("name, value", BOUNDARY_PARAMS, ids=[f"{n}={v!r}" for n, v in BOUNDARY_PARAMS])
def test_parameter_ranges_as_sklearn(name, value):
    X, y = _digits(60)

    def outcome(cls):
        kw = {"max_iter": 2, name: value}
        try:
            cls(**kw).fit(X, y)
        except (ValueError, TypeError):
            return "rejected"
        return "accepted"

    assert outcome(MLPClassifier) == outcome(skn.MLPClassifier)
