# SPDX-License-Identifier: MIT
"""ONNX export and import of dense networks (needs the optional ``onnx`` package: ``deltaprop[onnx]``).

``to_onnx(net)`` writes one Gemm per layer followed by the layer's activation; ``to_onnx(estimator)`` does
the same for a fitted deltaprop scikit-learn estimator and adds the label and probability outputs that
skl2onnx users expect. ``from_onnx(model)`` reads the dense feed-forward graphs that PyTorch's exporters
and skl2onnx write for a stack of linear layers and activations into a :class:`deltaprop.Network`.
What is accepted is listed in docs/onnx.md; anything else raises a ValueError naming the first node that
cannot be expressed. ``onnx`` is imported inside the functions, so importing this module costs nothing
until it is used.
"""
from __future__ import annotations

import math
import os
from typing import Any, Callable, Dict, List, Optional, Set, Tuple, Union

import numpy as np

from ._network import LOSSES, Network, _dtype

__all__ = ["to_onnx", "from_onnx", "register_skl2onnx"]

MIN_OPSET = 13
_ONNX_ACT = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu", "leaky_relu": "LeakyRelu", "softmax": "Softmax"}
_LOSS_FOR_OUTPUT = {"softmax": "cross_entropy", "sigmoid": "binary_cross_entropy"}
_META_LOSS = "deltaprop.loss"
_META_SLOPES = "deltaprop.slopes"


def _as_float32(v: float) -> float:
    """v rounded to float32 (infinite beyond its range), without numpy's overflow warning."""
    with np.errstate(over="ignore"):
        return float(np.float32(v))


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ImportError("deltaprop.onnx needs the onnx package: pip install 'deltaprop[onnx]'") from None
    return onnx


def _version() -> str:
    from . import __version__

    return __version__


# ---------------------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------------------


class _Graph:
    """Collects nodes and initializers; emits them into a standalone GraphProto or an skl2onnx container."""

    def __init__(self, unique: Optional[Callable[[str], str]] = None) -> None:
        self.nodes: List[Tuple[str, List[str], List[str], Dict[str, Any]]] = []
        self.consts: List[Tuple[str, np.ndarray]] = []
        self._used: Set[str] = set()
        self._unique = unique

    def name(self, hint: str) -> str:
        if self._unique is not None:
            return self._unique(hint)
        name, i = hint, 1
        while name in self._used:
            name = f"{hint}_{i}"
            i += 1
        self._used.add(name)
        return name

    def const(self, hint: str, value: np.ndarray) -> str:
        name = self.name(hint)
        self.consts.append((name, value))
        return name

    def node(self, op: str, inputs: List[str], out: Optional[str] = None, hint: str = "", **attrs: Any) -> str:
        out = out if out is not None else self.name(hint or op.lower())
        self.nodes.append((op, list(inputs), [out], attrs))
        return out


def _tensor(onnx: Any, name: str, value: np.ndarray) -> Any:
    if value.dtype.kind in "OU":
        flat = [str(v).encode("utf-8") for v in value.ravel()]
        return onnx.helper.make_tensor(name, onnx.TensorProto.STRING, list(value.shape), flat)
    return onnx.numpy_helper.from_array(value, name)


def _elem_type(onnx: Any, dtype: "np.dtype[Any]") -> int:
    code: int = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    return code


def _dense(g: _Graph, net: Network, x: str, out: str, prefix: str = "") -> str:
    """One Gemm per layer (transB=1: W is (n_out, n_in)) and its activation; returns the output name."""
    dt = net.dtype
    slopes = list(net._core.slopes)
    a = x
    for l, ((W, b), act) in enumerate(zip(net.weights, net.activations)):
        last = l == net.n_layers - 1
        W_name = g.const(f"{prefix}layer{l}.W", np.array(W, dtype=dt, copy=True))
        b_name = g.const(f"{prefix}layer{l}.b", np.array(b, dtype=dt, copy=True))
        z_out = out if (last and act == "identity") else None
        z = g.node("Gemm", [a, W_name, b_name], z_out, hint=f"{prefix}layer{l}.z", transB=1)
        a_out = out if last else None
        if act == "identity":
            a = z
        elif act == "leaky_relu":
            slope = float(slopes[l])
            if dt == np.float32 or _as_float32(slope) == slope:
                a = g.node("LeakyRelu", [z], a_out, hint=f"{prefix}layer{l}.a", alpha=slope)
            else:
                # LeakyRelu's alpha is a float32 attribute: a float64 slope it cannot hold exactly is written as
                # a = z if z > 0 else slope * z (the rule of the core's kernel), with the slope as a float64 scalar.
                s = g.const(f"{prefix}layer{l}.slope", np.array(slope, dtype=dt))
                zero = g.const(f"{prefix}layer{l}.zero", np.array(0, dtype=dt))
                pos = g.node("Greater", [z, zero], hint=f"{prefix}layer{l}.positive")
                neg = g.node("Mul", [z, s], hint=f"{prefix}layer{l}.slope_z")
                a = g.node("Where", [pos, z, neg], a_out, hint=f"{prefix}layer{l}.a")
        elif act == "softmax":
            a = g.node("Softmax", [z], a_out, hint=f"{prefix}layer{l}.a", axis=-1)
        else:
            a = g.node(_ONNX_ACT[act], [z], a_out, hint=f"{prefix}layer{l}.a")
    return a


def _check_opset(opset: object) -> int:
    from ._network import _integer

    onnx = _onnx()
    opset = _integer("opset", opset)
    latest: int = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= latest:
        raise ValueError(f"opset: expected an integer in [{MIN_OPSET}, {latest}] (this onnx {onnx.__version__}), got {opset}")
    return opset


def _model(g: _Graph, inputs: List[Any], outputs: List[Any], opset: int, doc: str, meta: Dict[str, str]) -> Any:
    onnx = _onnx()
    h = onnx.helper
    nodes = [h.make_node(op, ins, outs, name=outs[0], **attrs) for op, ins, outs, attrs in g.nodes]
    inits = [_tensor(onnx, name, value) for name, value in g.consts]
    graph = h.make_graph(nodes, "deltaprop", inputs, outputs, initializer=inits)
    opsets = [h.make_opsetid("", opset)]
    model = h.make_model(graph, opset_imports=opsets, producer_name="deltaprop", producer_version=_version(),
                         doc_string=doc, ir_version=h.find_min_ir_version_for(opsets))
    h.set_model_props(model, meta)
    onnx.checker.check_model(model, full_check=True)
    return model


def _network_model(net: Network, opset: int) -> Any:
    onnx = _onnx()
    h = onnx.helper
    et = _elem_type(onnx, net.dtype)
    g = _Graph()
    g.name("input")
    g.name("output")
    _dense(g, net, "input", "output")
    inputs = [h.make_tensor_value_info("input", et, ["batch", net.sizes[0]])]
    outputs = [h.make_tensor_value_info("output", et, ["batch", net.sizes[-1]])]
    meta = {_META_LOSS: net.loss_name, _META_SLOPES: " ".join(repr(float(s)) for s in net._core.slopes)}
    doc = f"deltaprop {net!r}"
    return _model(g, inputs, outputs, opset, doc, meta)


def _estimator_kind(est: Any) -> Tuple[Network, str]:
    net = getattr(est, "network_", None)
    if net is None:
        raise ValueError(f"net_or_estimator: {type(est).__name__} is not fitted (it has no network_)")
    if not isinstance(net, Network):
        raise TypeError(f"net_or_estimator: network_ of {type(est).__name__} is a {type(net).__name__}, expected a deltaprop Network")
    return net, ("classifier" if hasattr(est, "classes_") else "regressor")


def _class_labels(est: Any) -> np.ndarray:
    """classes_ as an int64 or a string array (the two label types of skl2onnx)."""
    classes = np.asarray(est.classes_)
    if classes.ndim != 1 or classes.size == 0:
        raise ValueError(f"classes_: expected a non-empty 1-D array, got shape {classes.shape}")
    if classes.dtype.kind in "biu":
        return classes.astype(np.int64)
    if classes.dtype.kind == "f":
        if np.all(np.isfinite(classes)) and np.all(classes == np.round(classes)):
            return classes.astype(np.int64)
        raise ValueError(f"classes_: labels must be integers or strings for ONNX, got {classes!r}")
    return np.array([str(c) for c in classes.tolist()], dtype=object)


def _estimator_graph(g: _Graph, est: Any, x: str, outs: List[str], nocl: bool = False) -> None:
    """The estimator's nodes from input x (already in the network's dtype) into the names outs.

    nocl (skl2onnx's option): the label is the class index, not the class itself."""
    net, kind = _estimator_kind(est)
    prefix = "dp_" if g._unique is not None else ""
    if kind == "regressor":
        if getattr(est, "out_activation_", None) == "exp":  # poisson loss: network_ outputs log-means
            g.node("Exp", [_dense(g, net, x, g.name(prefix + "log_mean"), prefix)], outs[0])
        else:
            _dense(g, net, x, outs[0], prefix)
        return
    label, proba = outs
    classes = _class_labels(est)
    n_units, out_act = net.sizes[-1], net.activations[-1]
    if out_act == "softmax" and n_units == classes.size:
        mode = "softmax"
    elif out_act == "sigmoid" and n_units == 1 and classes.size == 2:
        mode = "binary"
    elif out_act == "sigmoid" and n_units == classes.size:
        mode = "multilabel"
    else:
        raise ValueError(
            f"net_or_estimator: a classifier with {classes.size} classes and a {n_units}-unit {out_act} output "
            "is not one of softmax (one unit per class), logistic binary (1 unit, 2 classes) or logistic multi-label"
        )
    if mode == "binary":
        p = _dense(g, net, x, g.name(prefix + "positive_probability"), prefix)
        one = g.const(prefix + "one", np.array(1, dtype=net.dtype))
        q = g.node("Sub", [one, p], hint=prefix + "negative_probability")
        g.node("Concat", [q, p], proba, axis=1)
    else:
        _dense(g, net, x, proba, prefix)
    if mode == "multilabel":
        half = g.const(prefix + "threshold", np.array(0.5, dtype=net.dtype))
        above = g.node("Greater", [proba, half], hint=prefix + "above_threshold")
        g.node("Cast", [above], label, to=_onnx().TensorProto.INT64)
        return
    if nocl:
        g.node("ArgMax", [proba], label, axis=1, keepdims=0)
        return
    index = g.node("ArgMax", [proba], hint=prefix + "class_index", axis=1, keepdims=0)
    table = g.const(prefix + "classes", classes)
    g.node("Gather", [table, index], label, axis=0)


def _estimator_model(est: Any, opset: int) -> Any:
    onnx = _onnx()
    h = onnx.helper
    net, kind = _estimator_kind(est)
    et = _elem_type(onnx, net.dtype)
    n_in = int(getattr(est, "n_features_in_", net.sizes[0]))
    if n_in != net.sizes[0]:
        raise ValueError(f"n_features_in_: {n_in} differs from the input width of network_ ({net.sizes[0]})")
    g = _Graph()
    inputs = [h.make_tensor_value_info("X", et, ["N", n_in])]
    if kind == "regressor":
        g.name("X")
        g.name("variable")
        _estimator_graph(g, est, "X", ["variable"])
        outputs = [h.make_tensor_value_info("variable", et, ["N", net.sizes[-1]])]
    else:
        for n in ("X", "label", "probabilities"):
            g.name(n)
        _estimator_graph(g, est, "X", ["label", "probabilities"])
        classes = _class_labels(est)
        label_type = onnx.TensorProto.STRING if classes.dtype == object else onnx.TensorProto.INT64
        multilabel = net.activations[-1] == "sigmoid" and net.sizes[-1] > 1
        outputs = [
            h.make_tensor_value_info("label", label_type, ["N", classes.size] if multilabel else ["N"]),
            h.make_tensor_value_info("probabilities", et, ["N", classes.size]),
        ]
    doc = f"deltaprop {type(est).__name__} over {net!r}"
    return _model(g, inputs, outputs, opset, doc, {_META_LOSS: net.loss_name})


def to_onnx(net_or_estimator: Any, path: Union[str, "os.PathLike[str]", None] = None, opset: int = 17) -> Any:
    """Export a Network, or a fitted deltaprop scikit-learn estimator, as an ONNX model.

    Returns the ``onnx.ModelProto`` when ``path`` is None, else writes the file and returns None.

    A Network becomes input ``input`` [batch, n_in] → one Gemm per layer (transB=1) and its activation →
    output ``output`` [batch, n_out], weights as initializers in the network's dtype. A classifier gives
    ``label`` (int64 or string, [N]; [N, n_labels] for multi-label) and ``probabilities`` [N, n_classes]
    from input ``X``; a regressor gives ``variable`` [N, n_outputs].
    """
    opset = _check_opset(opset)
    if isinstance(net_or_estimator, Network):
        model = _network_model(net_or_estimator, opset)
    elif hasattr(net_or_estimator, "network_") or hasattr(net_or_estimator, "fit"):
        model = _estimator_model(net_or_estimator, opset)
    else:
        raise TypeError(
            f"net_or_estimator: expected a deltaprop Network or a fitted deltaprop estimator, got {type(net_or_estimator).__name__}"
        )
    if path is None:
        return model
    onnx = _onnx()
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        onnx.save_model(model, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return None


# ---------------------------------------------------------------------------------------------------------
# skl2onnx converters
# ---------------------------------------------------------------------------------------------------------


def _skl2onnx_shape(operator: Any) -> None:
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, Int64TensorType, StringTensorType

    est = operator.raw_operator
    net, kind = _estimator_kind(est)
    n = operator.inputs[0].get_first_dimension()
    in_type = operator.inputs[0].type
    float_type = DoubleTensorType if isinstance(in_type, DoubleTensorType) else FloatTensorType
    if kind == "regressor":
        operator.outputs[0].type = float_type([n, net.sizes[-1]])
        return
    classes = _class_labels(est)
    multilabel = net.activations[-1] == "sigmoid" and net.sizes[-1] > 1
    label_shape = [n, classes.size] if multilabel else [n]
    nocl = operator.scope_inst.get_options(est, dict(nocl=False))["nocl"]
    label_type = StringTensorType if classes.dtype == object and not nocl else Int64TensorType
    operator.outputs[0].type = label_type(label_shape)
    operator.outputs[1].type = float_type([n, classes.size])


def _skl2onnx_convert(scope: Any, operator: Any, container: Any) -> None:
    onnx = _onnx()
    est = operator.raw_operator
    net, kind = _estimator_kind(est)
    net_type = _elem_type(onnx, net.dtype)
    in_type = onnx.TensorProto.DOUBLE if type(operator.inputs[0].type).__name__ == "DoubleTensorType" else onnx.TensorProto.FLOAT
    g = _Graph(unique=scope.get_unique_variable_name)
    x = operator.inputs[0].full_name
    if in_type != net_type or type(operator.inputs[0].type).__name__ not in ("FloatTensorType", "DoubleTensorType"):
        x = g.node("Cast", [x], hint="dp_cast_input", to=net_type)
    outs = [o.full_name for o in operator.outputs]
    float_outs = [0] if kind == "regressor" else [1]
    inner = list(outs)
    if in_type != net_type:  # compute in the network's dtype, hand the float outputs over in the input's
        for i in float_outs:
            inner[i] = g.name("dp_" + outs[i])
    nocl = bool(container.get_options(est, dict(nocl=False))["nocl"]) if kind == "classifier" else False
    _estimator_graph(g, est, x, inner, nocl=nocl)
    for i in float_outs:
        if inner[i] != outs[i]:
            g.node("Cast", [inner[i]], outs[i], to=in_type)
    for name, value in g.consts:
        if value.dtype == object:
            container.add_initializer(name, onnx.TensorProto.STRING, list(value.shape),
                                      [str(v).encode("utf-8") for v in value.ravel()])
        else:
            container.add_initializer(name, None, None, onnx.numpy_helper.from_array(value, name))
    for op, ins, node_outs, attrs in g.nodes:
        container.add_node(op, ins, node_outs, name=scope.get_unique_operator_name("dp_" + op), **attrs)


def register_skl2onnx(*estimator_classes: type) -> None:
    """Register deltaprop's estimators with skl2onnx so that ``skl2onnx.to_onnx(pipeline)`` converts them.

    Registers ``deltaprop.sklearn.MLPClassifier`` and ``MLPRegressor`` when that module is present, and any
    further classes given here that follow the same fitted-attribute contract (``network_``, and ``classes_``
    for a classifier). Classifiers take skl2onnx's options ``zipmap`` (True, False, "columns") and ``nocl``
    (labels as class indices).
    """
    try:
        from skl2onnx import update_registered_converter
    except ImportError:
        raise ImportError("register_skl2onnx needs skl2onnx: pip install skl2onnx") from None
    from sklearn.base import ClassifierMixin

    classes = list(estimator_classes)
    dp_sklearn: Any = None
    try:
        from . import sklearn as dp_sklearn
    except ImportError:
        pass
    if dp_sklearn is not None:
        classes += [c for c in (getattr(dp_sklearn, "MLPClassifier", None), getattr(dp_sklearn, "MLPRegressor", None))
                    if c is not None and c not in classes]
    for cls in classes:
        if not isinstance(cls, type):
            raise TypeError(f"estimator_classes: expected classes, got {cls!r}")
        options = {"zipmap": [True, False, "columns"], "nocl": [False, True]} if issubclass(cls, ClassifierMixin) else None
        update_registered_converter(cls, f"Deltaprop{cls.__name__}", _skl2onnx_shape, _skl2onnx_convert,
                                    options=options)


# ---------------------------------------------------------------------------------------------------------
# Import
# ---------------------------------------------------------------------------------------------------------

_NOOPS = ("Identity", "Dropout", "Flatten", "Reshape", "Cast")
_ACTS_IN = {"Sigmoid": "sigmoid", "Tanh": "tanh", "Relu": "relu", "LeakyRelu": "leaky_relu", "Softmax": "softmax"}
_SUPPORTED = "Gemm, MatMul (+ Add), Add of a constant bias, Sigmoid, Tanh, Relu, LeakyRelu, Softmax (last axis), " \
             "and Identity, Dropout, Flatten, Reshape, Cast that change nothing"


class _Reader:
    def __init__(self, model: Any) -> None:
        onnx = _onnx()
        self.onnx = onnx
        self.model = model
        g = model.graph
        self.g = g
        self.opset: int = 1
        for o in model.opset_import:
            if o.domain in ("", "ai.onnx"):
                self.opset = o.version
        self.nodes = list(g.node)
        self.consts: Dict[str, Any] = {}  # name -> TensorProto (initializer) or NodeProto (Constant)
        for t in g.initializer:
            self.consts[t.name] = t
        for i, n in enumerate(self.nodes):
            if n.op_type == "Constant" and n.domain in ("", "ai.onnx") and len(n.output) == 1:
                self.consts[n.output[0]] = n
        self.producer: Dict[str, int] = {}
        for i, n in enumerate(self.nodes):
            if n.op_type == "Constant" and n.output and n.output[0] in self.consts:
                continue
            for o in n.output:
                if not o:
                    continue
                if o in self.producer or o in self.consts:
                    raise ValueError(f"model: tensor {o!r} is produced twice ({self.where(self.producer.get(o, i))} and {self.where(i)})")
                self.producer[o] = i
        self.consumers: Dict[str, List[int]] = {}
        for i, n in enumerate(self.nodes):
            for t in n.input:
                self.consumers.setdefault(t, []).append(i)

    def where(self, i: int) -> str:
        n = self.nodes[i]
        name = f" {n.name!r}" if n.name else ""
        return f"node {i}{name} ({n.domain + '.' if n.domain else ''}{n.op_type})"

    def array(self, name: str, who: str) -> np.ndarray:
        onnx = self.onnx
        src = self.consts[name]
        try:
            if isinstance(src, onnx.TensorProto):
                arr = onnx.numpy_helper.to_array(src)
            else:
                attrs = {a.name: a for a in src.attribute}
                if "value" in attrs:
                    arr = onnx.numpy_helper.to_array(attrs["value"].t)
                elif "value_float" in attrs:
                    arr = np.array(attrs["value_float"].f, dtype=np.float32)
                elif "value_floats" in attrs:
                    arr = np.array(list(attrs["value_floats"].floats), dtype=np.float32)
                elif "value_int" in attrs:
                    arr = np.array(attrs["value_int"].i, dtype=np.int64)
                elif "value_ints" in attrs:
                    arr = np.array(list(attrs["value_ints"].ints), dtype=np.int64)
                else:
                    raise ValueError("a Constant without a value, value_float(s) or value_int(s) attribute")
        except Exception as e:  # the onnx package raises several types for unreadable tensors
            raise ValueError(f"{who}: constant {name!r} cannot be read ({e})") from None
        return np.asarray(arr)

    def floats(self, name: str, who: str) -> np.ndarray:
        arr = self.array(name, who)
        what = "initializer" if isinstance(self.consts[name], self.onnx.TensorProto) else "constant"
        if arr.dtype not in (np.float16, np.float32, np.float64):
            raise ValueError(f"{who}: {what} {name!r} has dtype {arr.dtype}; expected a float tensor (float16, float32 or float64)")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{who}: {what} {name!r} holds non-finite values")
        return arr

    def attrs(self, i: int) -> Dict[str, Any]:
        h = self.onnx.helper
        return {a.name: h.get_attribute_value(a) for a in self.nodes[i].attribute}

    def data_inputs(self, i: int) -> List[str]:
        return [t for t in self.nodes[i].input if t and t not in self.consts]


def _load(path_or_model: Any) -> Any:
    onnx = _onnx()
    if isinstance(path_or_model, onnx.ModelProto):
        return path_or_model
    if isinstance(path_or_model, (bytes, bytearray, memoryview)):
        data = bytes(path_or_model)
        what = "path_or_model"
    elif isinstance(path_or_model, (str, os.PathLike)):
        path = os.fspath(path_or_model)
        what = f"path_or_model: {path!r}"
        with open(path, "rb") as f:  # FileNotFoundError, IsADirectoryError, ... as for Network.load
            data = f.read()
    else:
        raise TypeError(f"path_or_model: expected a path, bytes or an onnx.ModelProto, got {type(path_or_model).__name__}")
    if not data:
        raise ValueError(f"{what}: the file is empty, not an ONNX model")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as e:  # protobuf's DecodeError and friends
        raise ValueError(f"{what}: not an ONNX model ({type(e).__name__}: {e})") from None
    if isinstance(path_or_model, (str, os.PathLike)):
        try:
            from onnx.external_data_helper import load_external_data_for_model

            if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
                load_external_data_for_model(model, os.path.dirname(os.path.abspath(os.fspath(path_or_model))))
        except Exception as e:
            raise ValueError(f"{what}: external data cannot be loaded ({e})") from None
    return model


def _is_float_output(onnx: Any, vi: Any) -> bool:
    t = vi.type
    if t.WhichOneof("value") != "tensor_type":
        return False
    return t.tensor_type.elem_type in (0, onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16)


def _target(r: _Reader) -> str:
    """The tensor the imported network computes: the one float output (a ZipMap's input stands for its output)."""
    onnx = r.onnx
    found: List[str] = []
    for vi in r.g.output:
        name = vi.name
        i = r.producer.get(name)
        if i is not None and r.nodes[i].op_type == "ZipMap" and r.nodes[i].domain == "ai.onnx.ml":
            name = r.nodes[i].input[0]
        elif not _is_float_output(onnx, vi):
            continue
        if name not in found:
            found.append(name)
    # a float output may be a plain copy of another (skl2onnx's Identity to `probabilities`)
    if not found:
        raise ValueError("model: no float tensor output (expected the network's output, e.g. probabilities)")
    if len(found) > 1:
        names = ", ".join(repr(vi.name) for vi in r.g.output)
        raise ValueError(f"model: expected one float output (the network's), got {len(found)} among the outputs {names}")
    return found[0]


def _one_minus(r: _Reader, t: str, p: str) -> bool:
    """Is t = Sub(1, p)?"""
    i = r.producer.get(t)
    if i is None:
        return False
    n = r.nodes[i]
    if n.op_type != "Sub" or n.domain not in ("", "ai.onnx") or len(n.input) != 2 or n.input[1] != p or n.input[0] not in r.consts:
        return False
    one = r.array(n.input[0], r.where(i))
    return one.dtype.kind == "f" and one.size == 1 and float(one.ravel()[0]) == 1.0


def _leaky_where(r: _Reader, i: int) -> Optional[Tuple[str, float]]:
    """Where(Greater(z, 0), z, Mul(z, s)) (deltaprop's export of a float64 slope): returns (z, s) or None."""
    n = r.nodes[i]
    if len(n.input) != 3:
        return None
    cond, z, neg = n.input
    ci, mi = r.producer.get(cond), r.producer.get(neg)
    if ci is None or mi is None:
        return None
    c, m = r.nodes[ci], r.nodes[mi]
    if c.op_type != "Greater" or list(c.input)[:1] != [z] or len(c.input) != 2 or c.input[1] not in r.consts:
        return None
    zero = r.array(c.input[1], r.where(ci))
    if zero.size != 1 or float(zero.ravel()[0]) != 0.0:
        return None
    if m.op_type != "Mul" or len(m.input) != 2 or z not in m.input:
        return None
    s_name = m.input[1] if m.input[0] == z else m.input[0]
    if s_name not in r.consts:
        return None
    s = r.floats(s_name, r.where(mi))
    if s.size != 1:
        return None
    return z, float(s.ravel()[0])


def _chain(r: _Reader, x: str, target: str) -> List[Tuple[Any, ...]]:
    """The nodes from the input to the target, in order; each consumes the previous tensor and constants."""
    chain: List[Tuple[Any, ...]] = []
    seen: Set[int] = set()
    t = target
    while t != x:
        i = r.producer.get(t)
        if i is None:
            if t in r.consts:
                raise ValueError(f"model: the output {target!r} does not depend on the input {x!r}")
            raise ValueError(f"model: tensor {t!r} is neither the graph input nor produced by a node")
        if i in seen:
            raise ValueError(f"model: the graph has a cycle through {r.where(i)}")
        seen.add(i)
        n = r.nodes[i]
        if n.op_type == "Concat" and len(n.input) == 2 and _one_minus(r, n.input[0], n.input[1]):
            chain.append(("binary", i))  # probabilities [1 - p, p] from one logistic unit
            t = n.input[1]
            continue
        if n.op_type == "Where":
            leaky = _leaky_where(r, i)
            if leaky is not None:
                chain.append(("leaky_where", i, leaky[1]))
                t = leaky[0]
                continue
        data = r.data_inputs(i)
        if not data:
            raise ValueError(f"{r.where(i)}: has only constant inputs, so the output does not depend on the input {x!r}")
        if len(data) != 1:
            if n.op_type in _NOOPS or n.op_type in _ACTS_IN or n.op_type in ("Gemm", "MatMul", "Add"):
                raise ValueError(f"{r.where(i)}: takes {len(data)} non-constant inputs; deltaprop reads chains of "
                                 "layers whose weights are constants (initializers)")
            raise ValueError(f"{r.where(i)}: not something a deltaprop network can express (supported: {_SUPPORTED})")
        chain.append(("node", i))
        t = data[0]
    chain.reverse()
    return chain


def _bias(r: _Reader, name: str, n_out: int, who: str) -> np.ndarray:
    c = r.floats(name, who)
    if c.ndim > 2 or (c.ndim == 2 and c.shape[0] != 1) or (c.size not in (1, n_out)):
        raise ValueError(f"{who}: bias {name!r} of shape {c.shape} does not broadcast as one row of {n_out} values")
    return np.broadcast_to(c.reshape(-1).astype(np.float64) if c.dtype == np.float16 else c.reshape(-1), (n_out,))


def _input(r: _Reader) -> Tuple[str, Optional[int]]:
    init_names = {t.name for t in r.g.initializer}
    inputs = [vi for vi in r.g.input if vi.name not in init_names]
    if len(inputs) != 1:
        names = ", ".join(repr(vi.name) for vi in inputs) or "none"
        raise ValueError(f"model: expected one graph input (the batch of samples), got {len(inputs)}: {names}")
    vi = inputs[0]
    width = None
    if vi.type.WhichOneof("value") == "tensor_type" and vi.type.tensor_type.HasField("shape"):
        dims = vi.type.tensor_type.shape.dim
        if len(dims) != 2:
            raise ValueError(f"model: input {vi.name!r} has rank {len(dims)}; expected a 2-D [batch, n_in] input")
        if dims[1].HasField("dim_value"):
            width = int(dims[1].dim_value)
    return vi.name, width


def from_onnx(path_or_model: Any, loss: Optional[str] = None, dtype: Any = None) -> Network:
    """Read a dense feed-forward ONNX graph into a Network (see docs/onnx.md for what is accepted).

    ``loss`` defaults to the one deltaprop recorded at export, else follows the output activation: softmax →
    cross_entropy, sigmoid → binary_cross_entropy, anything else → mse. ``dtype`` defaults to the weights'
    (float64 if any weight is float64, else float32).
    """
    onnx = _onnx()
    model = _load(path_or_model)
    if not model.HasField("graph"):
        raise ValueError("model: has no graph")
    try:
        onnx.checker.check_model(model)
    except Exception as e:  # ValidationError, and protobuf errors for models too broken to check
        raise ValueError(f"model: not a valid ONNX model ({str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__})") from None
    r = _Reader(model)
    x, width = _input(r)
    target = _target(r)
    chain = _chain(r, x, target)

    # layers: [W (n_out, n_in), b (n_out,), activation, slope, index of the linear node, of the activation node]
    layers: List[List[Any]] = []
    pending = False  # the last layer has no activation yet (an Add may still fold into its bias)
    after = None  # what closed the chain: None, or "binary"
    casts = []
    input_reshapes = []  # Reshapes before the first layer of an input of unknown width: (node, width)
    weight_dtypes = set()
    for item in chain:
        i = item[1]
        who = r.where(i)
        if after is not None and not (item[0] == "node" and r.nodes[i].op_type == "Identity"):
            raise ValueError(f"{who}: comes after the [1 - p, p] probabilities, which must end the graph")
        if item[0] == "binary":
            if not layers or layers[-1][2] != "sigmoid" or layers[-1][0].shape[0] != 1:
                raise ValueError(f"{who}: probabilities [1 - p, p] need a single sigmoid unit before them")
            after = "binary"
            continue
        n = r.nodes[i]
        op = n.op_type
        if n.domain not in ("", "ai.onnx"):
            raise ValueError(f"{who}: operator domain {n.domain!r} is not supported (supported: {_SUPPORTED})")
        a = r.attrs(i)
        if item[0] == "leaky_where" or op in _ACTS_IN:
            act = "leaky_relu" if item[0] == "leaky_where" else _ACTS_IN[op]
            if not layers or not pending:
                raise ValueError(f"{who}: an activation must follow a linear layer (Gemm, or MatMul + Add)")
            if op == "Softmax":
                axis = a.get("axis", -1 if r.opset >= 13 else 1)
                if axis not in (1, -1):
                    raise ValueError(f"{who}: Softmax over axis {axis}; deltaprop's softmax is over the last axis (1 or -1)")
            slope = 0.01
            if op == "LeakyRelu":
                slope = float(a.get("alpha", 0.01))
            elif item[0] == "leaky_where":
                slope = item[2]
            layers[-1][2] = act
            layers[-1][3] = slope
            layers[-1][5] = i
            pending = False
            continue
        if op == "Gemm":
            if len(n.input) < 2 or n.input[1] not in r.consts or (len(n.input) > 2 and n.input[2] and n.input[2] not in r.consts):
                raise ValueError(f"{who}: the weights B and bias C of a Gemm must be constants")
            if a.get("transA", 0) != 0:
                raise ValueError(f"{who}: Gemm with transA=1 transposes the batch; deltaprop needs transA=0")
            B = r.floats(n.input[1], who)
            if B.ndim != 2:
                raise ValueError(f"{who}: weights {n.input[1]!r} have shape {B.shape}; expected a matrix")
            weight_dtypes.add(B.dtype)
            W = B if a.get("transB", 0) else B.T
            alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
            if alpha != 1.0:
                W = alpha * W.astype(np.float64)
            n_out = W.shape[0]
            if len(n.input) > 2 and n.input[2]:
                b = _bias(r, n.input[2], n_out, who)
                weight_dtypes.add(r.array(n.input[2], who).dtype)
                if beta != 1.0:
                    b = beta * b.astype(np.float64)
            else:
                b = np.zeros(n_out)
            layers.append([W, b, "identity", 0.01, i, i])
            pending = True
        elif op == "MatMul":
            if n.input[0] in r.consts or n.input[1] not in r.consts:
                raise ValueError(f"{who}: MatMul must multiply the data (left) by constant weights (right)")
            B = r.floats(n.input[1], who)
            if B.ndim != 2:
                raise ValueError(f"{who}: weights {n.input[1]!r} have shape {B.shape}; expected a matrix")
            weight_dtypes.add(B.dtype)
            layers.append([B.T, np.zeros(B.shape[1]), "identity", 0.01, i, i])
            pending = True
        elif op == "Add":
            if not layers or not pending:
                raise ValueError(f"{who}: an Add of a constant bias must follow a linear layer (Gemm or MatMul)")
            c_name = n.input[1] if n.input[0] not in r.consts else n.input[0]
            c = _bias(r, c_name, layers[-1][0].shape[0], who)
            weight_dtypes.add(r.array(c_name, who).dtype)
            b = layers[-1][1]
            layers[-1][1] = c.copy() if not np.any(b) else b.astype(np.float64) + c.astype(np.float64)
        elif op in ("Identity",):
            pass
        elif op == "Dropout":
            if len(n.input) > 2 and n.input[2]:
                mode = r.array(n.input[2], who) if n.input[2] in r.consts else None
                if mode is None or mode.size != 1 or bool(mode.ravel()[0]):
                    raise ValueError(f"{who}: Dropout in training mode changes its input; only inference Dropout is accepted")
            if len(n.output) > 1 and n.output[1] and r.consumers.get(n.output[1]):
                raise ValueError(f"{who}: the Dropout mask is used by other nodes")
        elif op == "Flatten":
            if a.get("axis", 1) not in (1, -1):
                raise ValueError(f"{who}: Flatten with axis {a.get('axis')} reshapes the batch; only axis 1 of a 2-D tensor changes nothing")
        elif op == "Reshape":
            cur = layers[-1][0].shape[0] if layers else width  # None: the input's width, known after the layers
            shape = r.array(n.input[1], who) if len(n.input) > 1 and n.input[1] in r.consts else None
            ok = shape is not None and shape.dtype.kind in "iu" and shape.shape == (2,)
            if ok and shape is not None:  # (ok implies it; said again for the type checker)
                s0, s1 = int(shape[0]), int(shape[1])
                keep_batch = s0 == -1 or (s0 == 0 and not a.get("allowzero", 0))
                if keep_batch and s1 == -1:
                    ok = s0 == 0
                elif keep_batch and cur is None and s1 > 0:
                    input_reshapes.append((who, s1))
                else:
                    ok = keep_batch and s1 == cur
            if not ok:
                raise ValueError(f"{who}: a Reshape to {None if shape is None else shape.tolist()} may change the "
                                 f"[batch, {cur if cur is not None else 'n'}] tensor; only [-1, n], [0, n] and [0, -1] are accepted")
        elif op == "Cast":
            to = a.get("to")
            np_to = None
            try:
                np_to = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(to))
            except Exception:
                pass
            if np_to is None or np_to not in (np.float16, np.float32, np.float64):
                raise ValueError(f"{who}: Cast to a non-float type ({to}) cannot be expressed")
            if layers:
                casts.append((who, np_to))
        else:
            raise ValueError(f"{who}: not something a deltaprop network can express (supported: {_SUPPORTED})")
    if not layers:
        raise ValueError("model: no linear layer (Gemm or MatMul) between the input and the output")

    sizes = [layers[0][0].shape[1]]
    if width is not None and width != sizes[0]:
        raise ValueError(f"{r.where(layers[0][4])}: takes {sizes[0]} inputs but the graph input has width {width}; the shapes do not chain")
    for who, s1 in input_reshapes:
        if s1 != sizes[0]:
            raise ValueError(f"{who}: a Reshape to [-1, {s1}] before a layer that takes {sizes[0]} inputs changes the batch")
    for l, layer in enumerate(layers):
        W = layer[0]
        if l and W.shape[1] != sizes[-1]:
            raise ValueError(f"{r.where(layer[4])}: takes {W.shape[1]} inputs but the layer before gives {sizes[-1]}; the shapes do not chain")
        sizes.append(W.shape[0])
    if dtype is None:
        dt = np.dtype(np.float64) if np.dtype(np.float64) in weight_dtypes else np.dtype(np.float32)
    else:
        dt = _dtype(dtype)
    graph_dt = np.dtype(np.float64) if np.dtype(np.float64) in weight_dtypes else np.dtype(np.float32)
    for who, to in casts:
        if to != graph_dt:
            raise ValueError(f"{who}: a Cast to {to} between layers computing in {graph_dt} changes the values")
    acts = [layer[2] for layer in layers]
    for l, act in enumerate(acts[:-1]):
        if act == "softmax":
            raise ValueError(f"{r.where(layers[l][5])}: a Softmax before the output layer; deltaprop allows softmax only on the output")
    slopes = [layer[3] for layer in layers]
    meta = {p.key: p.value for p in model.metadata_props}
    if meta.get(_META_SLOPES) and model.producer_name == "deltaprop":
        try:
            exact = [float(s) for s in meta[_META_SLOPES].split()]
        except ValueError:
            exact = []
        if len(exact) == len(slopes):  # the float64 slopes that LeakyRelu's float32 alpha rounded
            # a layer without leaky_relu keeps its recorded slope too (unused, but part of the network)
            slopes = [e if math.isfinite(e) and (act != "leaky_relu" or _as_float32(e) == _as_float32(s)) else s
                      for e, s, act in zip(exact, slopes, acts)]
    if loss is None:
        recorded = meta.get(_META_LOSS) if model.producer_name == "deltaprop" else None
        default = _LOSS_FOR_OUTPUT.get(acts[-1], "mse")
        if recorded in LOSSES and (recorded == "mse" or recorded == default):
            loss = recorded
        else:
            loss = default
    net = Network(sizes, activation=acts, loss=loss, dtype=dt, slope=slopes, seed=0)
    for (W_view, b_view), layer in zip(net.weights, layers):
        W_view[...] = np.asarray(layer[0]).astype(dt, copy=False)
        b_view[...] = np.asarray(layer[1]).astype(dt, copy=False)
    return net
