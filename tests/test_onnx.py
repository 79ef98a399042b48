# SPDX-License-Identifier: MIT
"""ONNX export checked in onnxruntime, import of graphs written by PyTorch and skl2onnx, round trips, and
the errors for graphs that a deltaprop network cannot express."""
import subprocess
import sys
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
dp = pytest.importorskip("deltaprop")
from deltaprop import onnx as dpx  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

RTOL = {"float32": 1e-5, "float64": 1e-12}


def run(model, feed):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feed)


def assert_matches(got, expected, dtype, what=""):
    """Within RTOL of the output's scale (a single element may be a cancellation near zero)."""
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert got.shape == expected.shape, f"{what}: shape {got.shape} != {expected.shape}"
    rtol = RTOL[np.dtype(dtype).name]
    scale = float(np.abs(expected).max(initial=0.0))
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol * scale, err_msg=what)


def random_net(rng, dtype, acts, seed):
    sizes = [int(w) for w in rng.integers(1, 40, len(acts) + 1)]
    if acts[-1] == "softmax" and sizes[-1] == 1:
        sizes[-1] = 3
    slopes = [float(s) for s in rng.uniform(-0.5, 0.5, len(acts))]
    net = dp.Network(sizes, activation=list(acts), dtype=dtype, seed=seed, slope=slopes)
    # biases away from zero, so that a bias written in the wrong place shows
    net.params[:] += rng.uniform(-0.5, 0.5, net.n_params).astype(dtype)
    return net


def test_import_deltaprop_does_not_import_onnx():
    code = "import sys, deltaprop; n = deltaprop.Network([2, 1]); " \
           "assert 'onnx' not in sys.modules and 'deltaprop.onnx' not in sys.modules, sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


# ---- export ----

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("act", dp.ACTIVATIONS)
def test_export_matches_predict(dtype, act):
    rng = np.random.default_rng(abs(hash((dtype, act))) % 2**32)
    for depth in range(1, 6):
        acts = [act if act != "softmax" else "tanh"] * (depth - 1) + [act]
        net = random_net(rng, dtype, acts, seed=depth)
        model = dpx.to_onnx(net)
        onnx.checker.check_model(model, full_check=True)
        for batch in (1, 1000):
            X = rng.uniform(-3, 3, (batch, net.sizes[0])).astype(dtype)
            (got,) = run(model, {"input": X})
            assert got.dtype == np.dtype(dtype)
            assert_matches(got, net.predict(X), dtype, f"{acts} sizes {net.sizes} batch {batch}")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_export_mixed_activations(dtype):
    rng = np.random.default_rng(7)
    hidden = ["identity", "sigmoid", "tanh", "relu", "leaky_relu"]
    for trial in range(6):
        depth = int(rng.integers(1, 6))
        acts = [str(a) for a in rng.choice(hidden, depth - 1)] + [str(rng.choice(hidden + ["softmax"]))]
        net = random_net(rng, dtype, acts, seed=trial)
        X = rng.standard_normal((257, net.sizes[0])).astype(dtype)
        (got,) = run(dpx.to_onnx(net), {"input": X})
        assert_matches(got, net.predict(X), dtype, str(acts))


def test_export_graph_structure():
    net = dp.Network([4, 6, 5, 3], activation=["relu", "leaky_relu", "softmax"], loss="cross_entropy",
                     dtype="float32", seed=0, slope=0.25)
    model = net.to_onnx()
    g = model.graph
    assert model.producer_name == "deltaprop" and model.producer_version == dp.__version__
    assert [n.op_type for n in g.node] == ["Gemm", "Relu", "Gemm", "LeakyRelu", "Gemm", "Softmax"]
    for n in g.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        if n.op_type == "Gemm":
            assert attrs == {"transB": 1}
        if n.op_type == "LeakyRelu":
            assert attrs == {"alpha": 0.25}
        if n.op_type == "Softmax":
            assert attrs == {"axis": -1}
    assert [i.name for i in g.input] == ["input"] and [o.name for o in g.output] == ["output"]
    for vi, width in ((g.input[0], 4), (g.output[0], 3)):
        dims = vi.type.tensor_type.shape.dim
        assert dims[0].dim_param == "batch" and dims[1].dim_value == width
    assert all(t.data_type == TensorProto.FLOAT for t in g.initializer)
    assert [tuple(t.dims) for t in g.initializer] == [(6, 4), (6,), (5, 6), (5,), (3, 5), (3,)]
    assert [o.version for o in model.opset_import if o.domain == ""] == [17]


def test_export_writes_file_and_opsets(tmp_path):
    net = dp.Network([3, 4, 2], activation="sigmoid", dtype="float64", seed=3)
    path = tmp_path / "net.onnx"
    assert net.to_onnx(path) is None
    model = onnx.load(str(path))
    assert [t.data_type for t in model.graph.initializer] == [TensorProto.DOUBLE] * 4
    X = np.random.default_rng(0).standard_normal((5, 3))
    assert_matches(run(model, {"input": X})[0], net.predict(X), "float64")
    latest = onnx.defs.onnx_opset_version()
    for opset in (13, latest):
        m = dpx.to_onnx(net, opset=opset)
        assert_matches(run(m, {"input": X})[0], net.predict(X), "float64", f"opset {opset}")
    with pytest.raises(ValueError, match="opset: expected an integer in"):
        net.to_onnx(opset=12)
    with pytest.raises(TypeError, match="opset"):
        net.to_onnx(opset="17")
    with pytest.raises(TypeError, match="net_or_estimator"):
        dpx.to_onnx(object())


# ---- round trip ----

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip_is_exact(dtype, tmp_path):
    rng = np.random.default_rng(11)
    cases = [
        (["relu", "tanh", "softmax"], "cross_entropy", 0.01),
        (["leaky_relu", "leaky_relu", "identity"], "mse", [0.01, -0.3, 0.1]),
        (["sigmoid", "sigmoid"], "binary_cross_entropy", 0.2),
        (["identity"], "mse", 0.01),
        (["tanh", "leaky_relu"], "mse", [0.5, 1.7]),
    ]
    for acts, loss, slope in cases:
        sizes = [int(w) for w in rng.integers(1, 9, len(acts) + 1)]
        net = dp.Network(sizes, activation=acts, loss=loss, dtype=dtype, seed=5, slope=slope)
        net.params[:] = rng.standard_normal(net.n_params).astype(dtype)
        for source in (net.to_onnx(), net.to_onnx().SerializeToString()):
            back = dp.Network.from_onnx(source)
            assert back.params.tobytes() == net.params.tobytes()
            assert back.sizes == net.sizes and back.activations == net.activations
            assert back.loss_name == net.loss_name and back.dtype == net.dtype
            assert list(back._core.slopes) == list(net._core.slopes)
            X = rng.standard_normal((9, sizes[0])).astype(dtype)
            assert back.predict(X).tobytes() == net.predict(X).tobytes()
        path = tmp_path / "m.onnx"
        net.to_onnx(path)
        assert dpx.from_onnx(path).params.tobytes() == net.params.tobytes()
        assert dpx.from_onnx(str(path), loss="mse").loss_name == "mse"


def test_float64_leaky_slope_is_exact_in_onnxruntime():
    """LeakyRelu's alpha is float32; a float64 slope it cannot hold is written as Where(z > 0, z, slope*z)."""
    net = dp.Network([2, 3, 1], activation="leaky_relu", output="leaky_relu", dtype="float64", seed=1, slope=0.01)
    model = net.to_onnx()
    assert "LeakyRelu" not in [n.op_type for n in model.graph.node]
    X = np.random.default_rng(2).standard_normal((100, 2)) * 10
    (got,) = run(model, {"input": X})
    assert_matches(got, net.predict(X), "float64")
    net32 = dp.Network([2, 3, 1], activation="leaky_relu", dtype="float32", seed=1, slope=0.01)
    assert "LeakyRelu" in [n.op_type for n in net32.to_onnx().graph.node]


def test_import_dtype_and_loss_arguments():
    net = dp.Network([3, 5, 2], activation="tanh", output="softmax", loss="mse", dtype="float32", seed=0)
    model = net.to_onnx()
    assert dpx.from_onnx(model).loss_name == "mse"  # recorded at export
    back = dpx.from_onnx(model, loss="cross_entropy", dtype="float64")
    assert back.loss_name == "cross_entropy" and back.dtype == np.float64
    assert np.array_equal(back.params, net.params.astype(np.float64))
    with pytest.raises(ValueError, match="loss"):
        dpx.from_onnx(model, loss="binary_cross_entropy")
    with pytest.raises(ValueError, match="dtype"):
        dpx.from_onnx(model, dtype="int32")


# ---- import of graphs written by PyTorch and skl2onnx ----

def _torch_model(torch):
    torch.manual_seed(0)
    nn = torch.nn
    return nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 12), nn.Tanh(), nn.Linear(12, 8),
                         nn.LeakyReLU(0.2), nn.Linear(8, 6), nn.Sigmoid(), nn.Dropout(0.3), nn.Linear(6, 4),
                         nn.Softmax(dim=-1)).eval()


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_import_torch_sequential(exporter, tmp_path):
    torch = pytest.importorskip("torch")
    if exporter == "dynamo":
        pytest.importorskip("onnxscript")
    seq = _torch_model(torch)
    x = torch.randn(7, 5)
    path = tmp_path / "seq.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "torchscript":
            torch.onnx.export(seq, (x,), str(path), dynamo=False, input_names=["input"], output_names=["output"],
                              dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
        else:
            torch.onnx.export(seq, (x,), str(path), dynamo=True, verbose=False,
                              dynamic_shapes=({0: torch.export.Dim("batch")},))
    net = dp.Network.from_onnx(path)
    assert net.sizes == (5, 16, 12, 8, 6, 4)
    assert net.activations == ("relu", "tanh", "leaky_relu", "sigmoid", "softmax")
    assert net.loss_name == "cross_entropy" and net.dtype == np.float32
    X = np.random.default_rng(1).standard_normal((1000, 5)).astype(np.float32)
    with torch.no_grad():
        expected = seq(torch.from_numpy(X)).numpy()
    assert_matches(net.predict(X), expected, "float32", exporter)
    model = onnx.load(str(path))
    assert_matches(net.predict(X), run(model, {model.graph.input[0].name: X})[0], "float32", exporter)


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_import_torch_variants_float64(exporter, tmp_path):
    """Flatten, Identity, Linear without bias, two Linear in a row, Softmax(dim=1), a float64 model."""
    torch = pytest.importorskip("torch")
    if exporter == "dynamo":
        pytest.importorskip("onnxscript")
    nn = torch.nn
    torch.manual_seed(1)
    seq = nn.Sequential(nn.Flatten(), nn.Linear(4, 6, bias=False), nn.Sigmoid(), nn.Identity(), nn.Linear(6, 5),
                        nn.Linear(5, 3), nn.Softmax(dim=1)).eval().double()
    path = tmp_path / "variants.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(seq, (torch.randn(3, 4, dtype=torch.float64),), str(path), dynamo=exporter == "dynamo",
                          verbose=False)
    net = dpx.from_onnx(path)
    assert net.sizes == (4, 6, 5, 3) and net.activations == ("sigmoid", "identity", "softmax")
    assert net.dtype == np.float64 and not np.any(net.weights[0][1])
    X = np.random.default_rng(2).standard_normal((3, 4))
    with torch.no_grad():
        expected = seq(torch.from_numpy(X)).numpy()
    assert_matches(net.predict(X), expected, "float64", exporter)


def _sk_fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: a few iterations are enough here
        return est.fit(X, y)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_import_skl2onnx_mlp(dtype):
    skl2onnx = pytest.importorskip("skl2onnx")
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    rng = np.random.default_rng(3)
    X = rng.standard_normal((200, 6))
    Xt = X.astype(dtype)
    cases = [
        ("multiclass", MLPClassifier((10, 7), activation="tanh", max_iter=30, random_state=0), rng.integers(0, 4, 200)),
        ("binary", MLPClassifier((9,), activation="logistic", max_iter=30, random_state=0), rng.integers(0, 2, 200)),
        ("strings", MLPClassifier((8,), max_iter=30, random_state=0), np.array(["ant", "bee", "cat"])[rng.integers(0, 3, 200)]),
        ("multilabel", MLPClassifier((8,), max_iter=30, random_state=0), (rng.random((200, 3)) > 0.5).astype(int)),
        ("regressor", MLPRegressor(hidden_layer_sizes=(12, 5), activation="relu", max_iter=30, random_state=0),
         X[:, 0] * X[:, 1]),
        ("regressor-identity", MLPRegressor(hidden_layer_sizes=(6,), activation="identity", max_iter=30, random_state=0), X[:, 3]),
    ]
    for name, est, y in cases:
        _sk_fit(est, X, y)
        # onnxruntime's ZipMap takes float32 only
        zipmaps = (None,) if name.startswith("regressor") else (True, False) if dtype == "float32" else (False,)
        for zipmap in zipmaps:
            options = {} if zipmap is None else {"zipmap": zipmap}
            model = skl2onnx.to_onnx(est, Xt[:1], options=options)
            net = dpx.from_onnx(model)
            assert net.dtype == np.dtype(dtype)
            got = net.predict(Xt)
            if name.startswith("regressor"):
                expected = est.predict(X).reshape(len(X), -1)
                assert net.loss_name == "mse"
            else:
                expected = est.predict_proba(X)
            onnx_out = None
            if not (name == "multilabel" and dtype == "float64"):  # onnxruntime has no float64 Binarizer
                outs = run(model, {"X": Xt})
                onnx_out = outs[0] if name.startswith("regressor") else outs[1]
                if zipmap:
                    onnx_out = np.array([[row[c] for c in est.classes_] for row in onnx_out])
            if name == "binary":  # the imported net is the single logistic unit p = probabilities[:, 1]
                expected, onnx_out = expected[:, 1:], onnx_out[:, 1:]
                assert net.loss_name == "binary_cross_entropy"
            if onnx_out is not None:
                assert_matches(got, onnx_out, dtype, f"{name} vs onnxruntime")
            if dtype == "float64":
                assert_matches(got, expected, dtype, f"{name} vs sklearn")
            else:  # sklearn computes in float64; a float32 graph holds rounded weights
                np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5, err_msg=f"{name} vs sklearn")


def test_import_refuses_skl2onnx_multi_output_regressor():
    """skl2onnx ends a multi-output MLPRegressor with Reshape [-1, 1], which reorders its outputs into one
    column (onnxruntime returns [2N, 1]); deltaprop refuses that node instead of importing something else."""
    skl2onnx = pytest.importorskip("skl2onnx")
    from sklearn.neural_network import MLPRegressor

    X = np.random.default_rng(8).standard_normal((50, 3))
    est = _sk_fit(MLPRegressor(hidden_layer_sizes=(4,), max_iter=5, random_state=0), X, X[:, :2])
    model = skl2onnx.to_onnx(est, X[:1].astype(np.float32))
    if not any(n.op_type == "Reshape" for n in model.graph.node):
        pytest.skip("this skl2onnx writes no Reshape for multi-output regressors")
    with pytest.raises(ValueError, match=r"\(Reshape\): a Reshape to \[-1, 1\] may change the \[batch, 2\] tensor"):
        dpx.from_onnx(model)


# ---- estimators ----

def _stand_ins():
    """Minimal estimators with the fitted attributes of deltaprop.sklearn's (network_, classes_, ...)."""
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

    class StandInClassifier(ClassifierMixin, BaseEstimator):
        def __init__(self, hidden=8, dtype="float32"):
            self.hidden = hidden
            self.dtype = dtype

        def fit(self, X, y):
            X = np.asarray(X, dtype=np.float64)
            y = np.asarray(y)
            if y.ndim == 2:  # multi-label indicator matrix
                self.classes_ = np.arange(y.shape[1])
                out, loss, Y = "sigmoid", "binary_cross_entropy", y.astype(np.float64)
            else:
                self.classes_, idx = np.unique(y, return_inverse=True)
                if len(self.classes_) == 2:
                    out, loss, Y = "sigmoid", "binary_cross_entropy", idx.reshape(-1, 1).astype(np.float64)
                else:
                    out, loss, Y = "softmax", "cross_entropy", idx
            n_units = 1 if Y.ndim == 2 and Y.shape[1] == 1 else len(self.classes_)
            self.network_ = dp.Network([X.shape[1], self.hidden, n_units], activation="tanh", output=out,
                                       loss=loss, dtype=self.dtype, seed=0)
            self.network_.fit(X, Y, epochs=20, batch_size=16, lr=0.1, seed=0)
            self.n_features_in_ = X.shape[1]
            self.n_outputs_ = n_units
            self.out_activation_ = "softmax" if out == "softmax" else "logistic"
            self.multilabel_ = y.ndim == 2
            return self

        def predict_proba(self, X):
            p = self.network_.predict(np.asarray(X, dtype=self.network_.dtype))
            return np.hstack([1 - p, p]) if p.shape[1] == 1 and not self.multilabel_ else p

        def predict(self, X):
            p = self.predict_proba(X)
            if self.multilabel_:
                return (p > 0.5).astype(np.int64)
            return self.classes_[np.argmax(p, axis=1)]

    class StandInRegressor(RegressorMixin, BaseEstimator):
        def __init__(self, dtype="float32"):
            self.dtype = dtype

        def fit(self, X, y):
            y = np.asarray(y, dtype=np.float64).reshape(len(X), -1)
            self.network_ = dp.Network([X.shape[1], 7, y.shape[1]], activation="relu", dtype=self.dtype, seed=0)
            self.network_.fit(X, y, epochs=10, batch_size=16, lr=0.01, seed=0)
            self.n_features_in_ = X.shape[1]
            self.n_outputs_ = y.shape[1]
            self.out_activation_ = "identity"
            return self

        def predict(self, X):
            return self.network_.predict(np.asarray(X, dtype=self.network_.dtype))

    return StandInClassifier, StandInRegressor


def _labels_cases(rng, n):
    return [
        ("multiclass", rng.integers(0, 3, n) * 10),
        ("binary", rng.integers(0, 2, n) + 4),
        ("strings", np.array(["no", "yes", "maybe", "never"])[rng.integers(0, 4, n)]),
        ("multilabel", (rng.random((n, 3)) > 0.5).astype(int)),
    ]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_estimator_export_stand_in(dtype):
    pytest.importorskip("sklearn")
    Classifier, Regressor = _stand_ins()
    rng = np.random.default_rng(4)
    X = rng.standard_normal((120, 5))
    Xt = X.astype(dtype)
    for name, y in _labels_cases(rng, len(X)):
        clf = Classifier(dtype=dtype).fit(X, y)
        model = dpx.to_onnx(clf)
        assert [o.name for o in model.graph.output] == ["label", "probabilities"]
        label, proba = run(model, {"X": Xt})
        assert label.dtype == (object if name == "strings" else np.int64)
        assert np.array_equal(label, clf.predict(X)), name
        assert_matches(proba, clf.predict_proba(X), dtype, name)
        # the dense part comes back as the estimator's network
        back = dpx.from_onnx(model)
        assert back.params.tobytes() == clf.network_.params.tobytes() and back.sizes == clf.network_.sizes
    reg = Regressor(dtype=dtype).fit(X, np.stack([X[:, 0], X[:, 1] * X[:, 2]], axis=1))
    model = dpx.to_onnx(reg)
    (variable,) = run(model, {"X": Xt})
    assert [o.name for o in model.graph.output] == ["variable"]
    assert_matches(variable, reg.predict(X), dtype, "regressor")
    with pytest.raises(ValueError, match="not fitted"):
        dpx.to_onnx(Regressor())


def test_skl2onnx_pipeline_with_stand_in():
    skl2onnx = pytest.importorskip("skl2onnx")
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    Classifier, Regressor = _stand_ins()
    dpx.register_skl2onnx(Classifier, Regressor)
    rng = np.random.default_rng(5)
    X = rng.standard_normal((150, 4)) * 3 + 1
    X32 = X.astype(np.float32)
    for name, y in _labels_cases(rng, len(X)):
        for dtype in ("float32", "float64"):
            pipe = make_pipeline(StandardScaler(), Classifier(dtype=dtype)).fit(X, y)
            for zipmap in (False, True):
                model = skl2onnx.to_onnx(pipe, X32[:1], options={id(pipe.steps[-1][1]): {"zipmap": zipmap}}
                                         if zipmap is False else None)
                label, proba = run(model, {"X": X32})
                if zipmap:
                    proba = np.array([[row[c] for c in pipe.classes_] for row in proba])
                expected = pipe.predict(X32)
                # rows whose deciding probabilities are within rounding of each other may go either way
                p = pipe.predict_proba(X32)
                margin = np.abs(p - 0.5) if name == "multilabel" else np.diff(np.sort(p, axis=1)[:, -2:], axis=1)
                clear = np.all(margin > 1e-5, axis=1) if name == "multilabel" else margin[:, 0] > 1e-5
                assert clear.mean() > 0.9 and np.array_equal(label[clear], expected[clear]), (name, dtype, zipmap)
                np.testing.assert_allclose(proba, pipe.predict_proba(X32), rtol=1e-5, atol=1e-6,
                                           err_msg=f"{name} {dtype} zipmap={zipmap}")
    # nocl: the label is the class index
    pipe = make_pipeline(StandardScaler(), Classifier()).fit(X, np.array(["b", "a", "c"])[rng.integers(0, 3, len(X))])
    model = skl2onnx.to_onnx(pipe, X32[:1], options={id(pipe.steps[-1][1]): {"zipmap": False, "nocl": True}})
    label, proba = run(model, {"X": X32})
    assert label.dtype == np.int64 and np.array_equal(label, np.argmax(proba, axis=1))
    # the pipeline's graph starts with a Scaler, which a deltaprop network cannot express
    with pytest.raises(ValueError, match=r"node 0 '.*' \(ai.onnx.ml.Scaler\)"):
        dpx.from_onnx(model)
    pipe = make_pipeline(StandardScaler(), Regressor(dtype="float64")).fit(X, X[:, 0] * X[:, 1])
    for X_in in (X32, X):
        model = skl2onnx.to_onnx(pipe, X_in[:1])
        (variable,) = run(model, {"X": X_in})
        assert variable.dtype == X_in.dtype
        np.testing.assert_allclose(variable, pipe.predict(X_in), rtol=1e-5, atol=1e-5)


def test_real_estimators():
    sk = pytest.importorskip("deltaprop.sklearn")
    skl2onnx = pytest.importorskip("skl2onnx")
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(6)
    X = rng.standard_normal((200, 4))
    X32 = X.astype(np.float32)
    dpx.register_skl2onnx()
    targets = [rng.integers(0, 3, 200), rng.integers(0, 2, 200), np.array(["a", "b", "c"])[rng.integers(0, 3, 200)],
               (rng.random((200, 3)) > 0.5).astype(int)]
    for y in targets:
        for dtype in ("float32", "float64"):
            clf = _sk_fit(sk.MLPClassifier((8,), max_iter=20, random_state=0, dtype=dtype), X, y)
            X_in = X.astype(clf.network_.dtype)
            label, proba = run(dpx.to_onnx(clf), {"X": X_in})
            assert np.array_equal(label, clf.predict(X_in))
            assert_matches(proba, clf.predict_proba(X_in), dtype)
        pipe = _sk_fit(make_pipeline(StandardScaler(), sk.MLPClassifier((8,), max_iter=20, random_state=0)), X, y)
        model = skl2onnx.to_onnx(pipe, X32[:1], options={sk.MLPClassifier: {"zipmap": False}})
        label, proba = run(model, {"X": X32})
        np.testing.assert_allclose(proba, pipe.predict_proba(X32), rtol=1e-4, atol=1e-5)
    for loss, y in (("squared_error", X[:, 0] - X[:, 1]), ("poisson", np.exp(X[:, 0] / 2))):
        reg = _sk_fit(sk.MLPRegressor(loss=loss, hidden_layer_sizes=(8,), max_iter=20, random_state=0), X, y)
        X_in = X.astype(reg.network_.dtype)
        (variable,) = run(dpx.to_onnx(reg), {"X": X_in})
        assert_matches(variable.reshape(-1), reg.predict(X_in), reg.network_.dtype, loss)
        pipe = _sk_fit(make_pipeline(StandardScaler(), sk.MLPRegressor(loss=loss, hidden_layer_sizes=(8,), max_iter=20,
                                                                        random_state=0)), X, y)
        (variable,) = run(skl2onnx.to_onnx(pipe, X32[:1]), {"X": X32})
        np.testing.assert_allclose(variable.reshape(-1), pipe.predict(X32), rtol=1e-4, atol=1e-5)


# ---- errors ----

def _vi(name, elem=TensorProto.FLOAT, shape=("N", 3)):
    return helper.make_tensor_value_info(name, elem, list(shape))


def _graph_model(nodes, inits, inputs=None, outputs=None, opset=17):
    g = helper.make_graph(nodes, "g", inputs or [_vi("x")], outputs or [_vi("y", shape=("N", 2))],
                          initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def _weights(n_out=2, n_in=3, dtype=np.float32):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n_out, n_in)).astype(dtype), rng.standard_normal(n_out).astype(dtype)


def test_import_accepts_matmul_add_gemm_variants():
    W, b = _weights()
    X = np.random.default_rng(1).standard_normal((6, 3)).astype(np.float32)
    variants = {
        "matmul+add": ([helper.make_node("MatMul", ["x", "Wt"], ["h"]), helper.make_node("Add", ["b", "h"], ["y"])],
                       {"Wt": W.T.copy(), "b": b.reshape(1, 2)}),
        "gemm alpha beta transB=0": ([helper.make_node("Gemm", ["x", "Wt", "b"], ["y"], alpha=0.5, beta=2.0)],
                                     {"Wt": W.T.copy(), "b": b}),
        "gemm no C": ([helper.make_node("Gemm", ["x", "W"], ["h"], transB=1), helper.make_node("Add", ["h", "b"], ["y"])],
                      {"W": W, "b": b}),
        "gemm scalar C": ([helper.make_node("Gemm", ["x", "W", "c"], ["y"], transB=1)], {"W": W, "c": np.float32(0.5)}),
        "noops": ([helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("Cast", ["f"], ["c"], to=TensorProto.FLOAT),
                   helper.make_node("Gemm", ["c", "W", "b"], ["z"], transB=1), helper.make_node("Identity", ["z"], ["i"]),
                   helper.make_node("Reshape", ["i", "shape"], ["r"]), helper.make_node("Dropout", ["r"], ["y"])],
                  {"W": W, "b": b, "shape": np.array([-1, 2], dtype=np.int64)}),
    }
    for name, (nodes, inits) in variants.items():
        model = _graph_model(nodes, inits)
        net = dpx.from_onnx(model)
        assert net.sizes == (3, 2) and net.activations == ("identity",), name
        assert_matches(net.predict(X), run(model, {"x": X})[0], "float32", name)


def test_import_constant_nodes_and_float16():
    W, b = _weights()
    nodes = [helper.make_node("Constant", [], ["W"], value=numpy_helper.from_array(W.astype(np.float16), "W")),
             helper.make_node("Constant", [], ["b"], value_floats=list(map(float, b))),
             helper.make_node("Cast", ["x"], ["x16"], to=TensorProto.FLOAT16),
             helper.make_node("Cast", ["b"], ["b16"], to=TensorProto.FLOAT16),
             helper.make_node("Gemm", ["x16", "W", "b16"], ["z"], transB=1),
             helper.make_node("Relu", ["z"], ["y"])]
    with pytest.raises(ValueError, match=r"Gemm\).*constants"):  # a computed bias is not a constant
        dpx.from_onnx(_graph_model(nodes, {}, outputs=[_vi("y", TensorProto.FLOAT16, ("N", 2))]))
    nodes = [nodes[0], helper.make_node("Gemm", ["x", "W"], ["z"], transB=1), helper.make_node("Relu", ["z"], ["y"])]
    net = dpx.from_onnx(_graph_model(nodes, {}, inputs=[_vi("x", TensorProto.FLOAT16)],
                                     outputs=[_vi("y", TensorProto.FLOAT16, ("N", 2))]))
    assert net.dtype == np.float32 and net.activations == ("relu",)
    assert np.array_equal(net.weights[0][0], W.astype(np.float16).astype(np.float32))


def _expect_error(model_or_bytes, match):
    """match None: the model is fine (the call must succeed)."""
    if match is None:
        return dpx.from_onnx(model_or_bytes)
    with pytest.raises(ValueError, match=match):
        dpx.from_onnx(model_or_bytes)


def test_import_errors_name_the_node(tmp_path):
    W, b = _weights()
    W2, b2 = _weights(4, 5)
    gemm = helper.make_node("Gemm", ["x", "W", "b"], ["z"], name="first", transB=1)
    inits = {"W": W, "b": b}
    # an operator deltaprop has no counterpart for
    _expect_error(_graph_model([gemm, helper.make_node("Exp", ["z"], ["y"], name="expo")], inits),
                  r"node 1 'expo' \(Exp\): not something a deltaprop network can express")
    _expect_error(_graph_model([gemm, helper.make_node("LogSoftmax", ["z"], ["y"])], inits), r"\(LogSoftmax\)")
    # the first node that cannot be expressed is named, in graph order
    _expect_error(_graph_model([helper.make_node("Abs", ["x"], ["a"], name="abs"), helper.make_node("Gemm", ["a", "W", "b"], ["z"], transB=1),
                                helper.make_node("Exp", ["z"], ["y"])], inits), r"node 0 'abs' \(Abs\)")
    # shapes that do not chain
    _expect_error(_graph_model([gemm, helper.make_node("Gemm", ["z", "W2", "b2"], ["y"], name="second", transB=1)],
                               {**inits, "W2": W2, "b2": b2}, outputs=[_vi("y", shape=("N", 4))]),
                  r"'second' \(Gemm\): takes 5 inputs but the layer before gives 2; the shapes do not chain")
    _expect_error(_graph_model([gemm, helper.make_node("Relu", ["z"], ["y"])], inits, inputs=[_vi("x", shape=("N", 4))]),
                  "graph input has width 4")
    # non-float initializers
    _expect_error(_graph_model([helper.make_node("MatMul", ["x", "Wi"], ["y"])], {"Wi": np.ones((3, 2), np.int64)},
                               inputs=[_vi("x", TensorProto.INT64)], outputs=[_vi("y", TensorProto.FLOAT)]),
                  r"initializer 'Wi' has dtype int64; expected a float tensor")
    # bias of the wrong shape, transA, softmax on the wrong axis or a hidden layer, activations out of place
    _expect_error(_graph_model([helper.make_node("Gemm", ["x", "W", "bb"], ["y"], transB=1)], {"W": W, "bb": np.ones((3, 2), np.float32)}),
                  "does not broadcast")
    _expect_error(_graph_model([helper.make_node("Gemm", ["x", "W", "b"], ["y"], transA=1, transB=1)], inits), "transA")
    _expect_error(_graph_model([gemm, helper.make_node("Softmax", ["z"], ["y"], axis=0)], inits), "axis 0")
    _expect_error(_graph_model([gemm, helper.make_node("Softmax", ["z"], ["s"]), helper.make_node("Gemm", ["s", "W3", "b3"], ["y"], transB=1)],
                               {**inits, "W3": np.ones((2, 2), np.float32), "b3": np.ones(2, np.float32)}),
                  r"node 1 \(Softmax\): a Softmax before the output layer")
    _expect_error(_graph_model([gemm, helper.make_node("Relu", ["z"], ["r"]), helper.make_node("Tanh", ["r"], ["y"], name="t")], inits),
                  r"'t' \(Tanh\): an activation must follow a linear layer")
    _expect_error(_graph_model([helper.make_node("Relu", ["x"], ["r"], name="r0"), helper.make_node("Gemm", ["r", "W", "b"], ["y"], transB=1)], inits),
                  r"'r0' \(Relu\): an activation must follow")
    _expect_error(_graph_model([helper.make_node("Dropout", ["x", "ratio", "train"], ["d"]), helper.make_node("Gemm", ["d", "W", "b"], ["y"], transB=1)],
                               {**inits, "ratio": np.array(0.5, np.float32), "train": np.array(True)}), "training mode")
    _expect_error(_graph_model([helper.make_node("Reshape", ["x", "s"], ["r"]), helper.make_node("Gemm", ["r", "W", "b"], ["y"], transB=1)],
                               {**inits, "s": np.array([3, -1], np.int64)}), "Reshape")
    _expect_error(_graph_model([helper.make_node("Reshape", ["x", "s"], ["r"]), helper.make_node("Gemm", ["r", "W", "b"], ["y"], transB=1)],
                               {**inits, "s": np.array([-1, 3], np.int64)}, inputs=[_vi("x", shape=("N", 6))]), r"Reshape to \[-1, 3\] may change")
    _expect_error(_graph_model([helper.make_node("Reshape", ["x", "s"], ["r"]), helper.make_node("Gemm", ["r", "W", "b"], ["y"], transB=1)],
                               {**inits, "s": np.array([-1, 3], np.int64)}, inputs=[_vi("x", shape=("N", "width"))]),
                  None)
    _expect_error(_graph_model([helper.make_node("Reshape", ["x", "s"], ["r"]), helper.make_node("Gemm", ["r", "W", "b"], ["y"], transB=1)],
                               {**inits, "s": np.array([-1, 6], np.int64)}, inputs=[_vi("x", shape=("N", "width"))]),
                  r"Reshape to \[-1, 6\] before a layer that takes 3 inputs")
    _expect_error(_graph_model([gemm, helper.make_node("Cast", ["z"], ["i"], to=TensorProto.INT32),
                                helper.make_node("Cast", ["i"], ["y"], to=TensorProto.FLOAT)], inits), "Cast to a non-float")
    _expect_error(_graph_model([gemm, helper.make_node("Cast", ["z"], ["y"], to=TensorProto.DOUBLE)], inits,
                               outputs=[_vi("y", TensorProto.DOUBLE, ("N", 2))]), "Cast to float64 between layers computing in float32")
    # weights that are computed, two data inputs, no data dependence, several inputs or float outputs
    _expect_error(_graph_model([helper.make_node("Gemm", ["x", "x2", "b"], ["y"], transB=1)], inits,
                               inputs=[_vi("x"), _vi("x2", shape=(2, 3))]), "expected one graph input")
    _expect_error(_graph_model([helper.make_node("Identity", ["W"], ["y"])], inits, outputs=[_vi("y", shape=(2, 3))]),
                  "does not depend on the input")
    _expect_error(_graph_model([gemm, helper.make_node("Relu", ["z"], ["y"])], inits, outputs=[_vi("y", shape=("N", 2)), _vi("z", shape=("N", 2))]),
                  "expected one float output")
    _expect_error(_graph_model([helper.make_node("Identity", ["x"], ["y"])], {}, outputs=[_vi("y")]), "no linear layer")


def test_import_rejects_malformed_and_cyclic(tmp_path):
    W, b = _weights()
    good = _graph_model([helper.make_node("Gemm", ["x", "W", "b"], ["y"], transB=1)], {"W": W, "b": b})
    data = good.SerializeToString()
    for bad in (b"", b"\x00" * 7, b"not an onnx file at all", data[: len(data) // 2], bytes(range(256)) * 4):
        _expect_error(bad, "not an ONNX model|the file is empty|not a valid ONNX model|no graph|expected one")
    path = tmp_path / "trunc.onnx"
    path.write_bytes(data[:-5])
    _expect_error(path, "trunc.onnx")
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        dpx.from_onnx(tmp_path / "missing.onnx")
    with pytest.raises(IsADirectoryError):
        dpx.from_onnx(tmp_path)
    with pytest.raises(TypeError, match="path_or_model"):
        dpx.from_onnx(42)
    # a cycle: z -> r -> z
    cyc = _graph_model([helper.make_node("Gemm", ["r", "W", "b"], ["z"], transB=1), helper.make_node("Relu", ["z"], ["r"]),
                        helper.make_node("Identity", ["z"], ["y"])], {"W": W, "b": b})
    _expect_error(cyc, "cycle|topologically sorted")
    # a tensor produced twice
    twice = _graph_model([helper.make_node("Gemm", ["x", "W", "b"], ["y"], transB=1),
                          helper.make_node("Gemm", ["x", "W", "b"], ["y"], transB=1)], {"W": W, "b": b})
    _expect_error(twice, "produced twice|not a valid ONNX model")
    # unreadable initializer data
    broken = _graph_model([helper.make_node("Gemm", ["x", "W", "b"], ["y"], transB=1)], {"W": W, "b": b})
    broken.graph.initializer[0].raw_data = b"\x00" * 5
    _expect_error(broken, "cannot be read|not a valid ONNX model")


def test_import_of_corrupted_files_raises_value_error_only():
    """Random byte changes, deletions and insertions: a Network or a ValueError, never anything else."""
    rng = np.random.default_rng(21)
    net = dp.Network([3, 5, 4, 2], activation=["relu", "leaky_relu", "softmax"], loss="cross_entropy",
                     dtype="float64", seed=0)
    base = net.to_onnx().SerializeToString()
    outcomes = {"network": 0, "ValueError": 0}
    for _ in range(400):
        data = bytearray(base)
        for _ in range(int(rng.integers(1, 4))):
            pos = int(rng.integers(0, len(data)))
            kind = int(rng.integers(0, 3))
            if kind == 0:
                data[pos] = int(rng.integers(0, 256))
            elif kind == 1:
                del data[pos:pos + int(rng.integers(1, 20))]
            else:
                data[pos:pos] = rng.integers(0, 256, int(rng.integers(1, 8))).astype(np.uint8).tobytes()
        try:
            got = dpx.from_onnx(bytes(data))
        except ValueError:
            outcomes["ValueError"] += 1
        else:
            outcomes["network"] += 1
            got.predict(np.zeros((2, got.sizes[0])))
    assert outcomes["ValueError"] > 100, outcomes
