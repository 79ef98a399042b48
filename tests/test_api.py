# SPDX-License-Identifier: MIT
"""Construction, seeding, pickling, copies, zero-copy views, threads and input conversion."""
from __future__ import annotations

import gc
import pickle
import subprocess
import sys
import threading

import numpy as np
import pytest

import deltaprop as dp
from helpers import DTYPES, assert_close, layer_offsets
from reference import RefNet


def _data(n=10, n_in=5, n_out=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, n_in)), rng.normal(size=(n, n_out))


# --- construction ----------------------------------------------------------------------------------

def test_attributes():
    net = dp.Network([5, 8, 3], seed=0)
    assert net.sizes == (5, 8, 3)
    assert net.n_layers == 2
    assert net.n_params == 5 * 8 + 8 + 8 * 3 + 3
    assert net.activations == ("relu", "identity")
    assert net.loss_name == "mse"
    assert net.dtype == np.dtype(np.float32)
    assert net.init == "he_uniform"
    assert isinstance(repr(net), str) and repr(net)
    assert isinstance(dp.__version__, str)


@pytest.mark.parametrize("loss,output", [("mse", "identity"), ("binary_cross_entropy", "sigmoid"),
                                         ("cross_entropy", "softmax")])
def test_default_output_from_loss(loss, output):
    net = dp.Network([4, 3, 2], activation="tanh", loss=loss, seed=0)
    assert net.activations == ("tanh", output)
    assert net.init == "glorot_uniform"


@pytest.mark.parametrize("dtype", [np.float32, np.float64, "float32", "float64"])
def test_dtype_accepts_names_and_types(dtype):
    net = dp.Network([3, 2], dtype=dtype, seed=0)
    assert net.dtype == np.dtype(dtype)
    for arr in (net.params, net.grad, net.velocity, net.weights[0][0], net.forward(np.ones((2, 3)))):
        assert arr.dtype == np.dtype(dtype)


@pytest.mark.parametrize("init", ["glorot_uniform", "he_uniform", "he_normal"])
def test_init_ranges_and_zero_biases(init):
    sizes = [200, 300, 100]
    net = dp.Network(sizes, activation="tanh", init=init, dtype="float64", seed=1)
    assert net.init == init
    for (W, b), n_in, n_out in zip(net.weights, sizes[:-1], sizes[1:]):
        np.testing.assert_array_equal(b, 0.0)
        if init == "glorot_uniform":
            e = np.sqrt(6.0 / (n_in + n_out))
            assert np.abs(W).max() <= e and W.std() == pytest.approx(e / np.sqrt(3), rel=0.05)
        elif init == "he_uniform":
            e = np.sqrt(6.0 / n_in)
            assert np.abs(W).max() <= e and W.std() == pytest.approx(e / np.sqrt(3), rel=0.05)
        else:
            assert W.mean() == pytest.approx(0.0, abs=0.01)
            assert W.std() == pytest.approx(np.sqrt(2.0 / n_in), rel=0.05)


# --- seeds, pickle, copy ---------------------------------------------------------------------------

_SEED_SCRIPT = (
    "import deltaprop as dp; "
    "net = dp.Network([7, 13, 5, 2], activation='tanh', dtype='{dtype}', seed=123); "
    "print(net.params.tobytes().hex())"
)


@pytest.mark.parametrize("dtype", DTYPES)
def test_same_seed_same_weights_in_separate_processes(dtype):
    outs = [subprocess.run([sys.executable, "-c", _SEED_SCRIPT.format(dtype=dtype)],
                           capture_output=True, text=True, check=True).stdout.strip()
            for _ in range(2)]
    assert outs[0] == outs[1]
    here = dp.Network([7, 13, 5, 2], activation="tanh", dtype=dtype, seed=123)
    assert here.params.tobytes().hex() == outs[0]


def test_different_seeds_differ_and_none_is_random():
    a = dp.Network([6, 5, 4], seed=1)
    b = dp.Network([6, 5, 4], seed=2)
    c = dp.Network([6, 5, 4], seed=1)
    assert not np.array_equal(a.params, b.params)
    np.testing.assert_array_equal(a.params, c.params)
    d = dp.Network([6, 5, 4])
    e = dp.Network([6, 5, 4])
    assert not np.array_equal(d.params, e.params)


def _trained(dtype="float64"):
    X, Y = _data()
    net = dp.Network([5, 6, 3], activation="tanh", dtype=dtype, seed=4)
    net.fit(X, Y, epochs=2, batch_size=4, lr=0.05, momentum=0.9)
    net.backward(X, Y)
    return net, X, Y


@pytest.mark.parametrize("dtype", DTYPES)
def test_pickle_roundtrip_exact(dtype):
    net, X, Y = _trained(dtype)
    clone = pickle.loads(pickle.dumps(net))
    assert type(clone) is type(net)
    for name in ("sizes", "activations", "loss_name", "dtype", "init", "n_layers", "n_params"):
        assert getattr(clone, name) == getattr(net, name), name
    assert clone.params.tobytes() == net.params.tobytes()
    assert clone.velocity.tobytes() == net.velocity.tobytes()
    assert not np.shares_memory(clone.params, net.params)
    # continued training is identical (optimizer state and shuffle generator state round-trip)
    la = net.fit(X, Y, epochs=3, batch_size=3, lr=0.05, momentum=0.9)
    lb = clone.fit(X, Y, epochs=3, batch_size=3, lr=0.05, momentum=0.9)
    assert la == lb
    assert clone.params.tobytes() == net.params.tobytes()
    assert clone.velocity.tobytes() == net.velocity.tobytes()


def test_save_load_roundtrip(tmp_path):
    net, X, Y = _trained()
    path = tmp_path / "net.dp"
    net.save(str(path))
    back = dp.Network.load(str(path))
    assert back.sizes == net.sizes and back.activations == net.activations
    assert back.params.tobytes() == net.params.tobytes()
    assert back.velocity.tobytes() == net.velocity.tobytes()
    np.testing.assert_array_equal(back.predict(X), net.predict(X))
    la = net.fit(X, Y, epochs=2, batch_size=3, lr=0.05, momentum=0.9)
    lb = back.fit(X, Y, epochs=2, batch_size=3, lr=0.05, momentum=0.9)
    assert la == lb
    assert back.params.tobytes() == net.params.tobytes()


def test_copy_is_independent():
    net, X, Y = _trained()
    clone = net.copy()
    assert clone.params.tobytes() == net.params.tobytes()
    assert clone.velocity.tobytes() == net.velocity.tobytes()
    assert not np.shares_memory(clone.params, net.params)
    before = net.params.copy(), net.velocity.copy(), net.grad.copy()
    clone.params[...] = 0.0
    clone.train_batch(X, Y, lr=0.1, momentum=0.9)
    np.testing.assert_array_equal(net.params, before[0])
    np.testing.assert_array_equal(net.velocity, before[1])
    np.testing.assert_array_equal(net.grad, before[2])


# --- views ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_views_alias_the_buffers(dtype):
    X, _ = _data()
    net = dp.Network([5, 6, 3], activation="tanh", dtype=dtype, seed=0)
    W0, b0 = net.weights[0]
    for arr in (net.params, W0, b0):
        assert arr.flags.writeable
    assert np.shares_memory(net.params, W0) and np.shares_memory(net.params, b0)
    assert np.shares_memory(net.params, net.weights[1][0])
    assert np.shares_memory(net.grad, net.gradients[0][0])
    assert np.shares_memory(net.grad, net.gradients[1][1])
    assert not np.shares_memory(net.params, net.grad)
    assert not np.shares_memory(net.params, net.velocity)
    assert net.params.shape == (net.n_params,)
    assert net.grad.shape == net.velocity.shape == (net.n_params,)
    assert W0.shape == (6, 5) and b0.shape == (6,)
    # flat layout: per layer W row-major then b
    (w_start, b_start), _ = layer_offsets(net.sizes)
    np.testing.assert_array_equal(net.params[w_start:b_start].reshape(6, 5), W0)
    # writing through weights changes the next forward
    out0 = net.forward(X)
    net.weights[0][0][...] = 0.0
    out1 = net.forward(X)
    assert not np.array_equal(out0, out1)
    assert_close(out1, RefNet.from_net(net).predict(X), dtype)
    np.testing.assert_array_equal(net.params[w_start:b_start], 0.0)
    # writing through params changes weights
    net.params[...] = 0.25
    np.testing.assert_array_equal(net.weights[1][1], 0.25)
    assert_close(net.forward(X), RefNet.from_net(net).predict(X), dtype)
    # gradients views see backward's results
    net.backward(X, np.zeros((10, 3)))
    assert np.abs(net.gradients[1][0]).max() > 0


def test_views_keep_network_alive():
    X, _ = _data()
    net = dp.Network([5, 6, 3], activation="tanh", dtype="float64", seed=0)
    expected = net.params.copy()
    params, weights, grad, velocity = net.params, net.weights, net.grad, net.velocity
    del net
    gc.collect()
    # allocate a bit so a freed buffer would likely be reused
    junk = [dp.Network([5, 6, 3], seed=i) for i in range(5)]
    np.testing.assert_array_equal(params, expected)
    params[0] = 42.0
    assert weights[0][0][0, 0] == 42.0
    assert grad.shape == velocity.shape == params.shape
    del junk


@pytest.mark.parametrize("batch", [1, 7])
def test_workspace_views_readonly_with_shapes(batch):
    X, Y = _data(n=batch)
    net = dp.Network([5, 4, 6, 3], activation="tanh", dtype="float64", seed=0)
    net.backward(X, Y)
    for name in ("z", "a", "deltas"):
        views = getattr(net, name)
        assert len(views) == 3
        assert [v.shape for v in views] == [(batch, 4), (batch, 6), (batch, 3)]
        for v in views:
            assert not v.flags.writeable
            with pytest.raises(ValueError):
                v[...] = 0.0
    ref = RefNet.from_net(net)
    _, grads, deltas, zs, acts = ref.backward(X, Y)
    for l in range(3):
        assert_close(net.z[l], zs[l], "float64")
        assert_close(net.a[l], acts[l], "float64")
        assert_close(net.deltas[l], deltas[l], "float64")
    np.testing.assert_array_equal(net.a[-1], net.forward(X))


@pytest.mark.parametrize("dtype", DTYPES)
def test_predict_equals_forward_and_leaves_workspace(dtype):
    X, _ = _data(n=9)
    X2, _ = _data(n=4, seed=1)
    net = dp.Network([5, 6, 3], activation="sigmoid", dtype=dtype, seed=0)
    out = net.forward(X)
    a_last = net.a[-1].copy()
    p = net.predict(X)
    np.testing.assert_array_equal(p, out)
    assert not np.shares_memory(p, out)
    net.predict(X2)
    np.testing.assert_array_equal(net.a[-1], a_last)  # predict does not touch the workspace
    out[...] = 0.0  # forward returns a new array, not the workspace
    np.testing.assert_array_equal(net.a[-1], a_last)


# Single samples through layers wide enough that two consecutive layers run as one parallel job (the
# second layer's sum split by input ranges): correct, the same as forward and as the same rows of a
# batch up to rounding, and the same bits for any thread count. Odd widths exercise partial row groups.
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sizes,acts,loss", [
    ((784, 256, 128, 10), ("relu", "relu", "softmax"), "cross_entropy"),
    ((301, 700, 57, 690, 33), ("tanh", "sigmoid", "leaky_relu", "identity"), "mse"),
    ((1000, 203, 9), ("sigmoid", "identity"), "mse"),
])
def test_single_sample_forward_through_layer_pairs(dtype, sizes, acts, loss, restore_threads):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(5, sizes[0]))
    outs = []
    for n in (1, 2, 3):
        dp.set_num_threads(n)
        net = dp.Network(sizes, activation=list(acts), loss=loss, dtype=dtype, seed=4)
        rows = [net.predict(X[i:i + 1].astype(dtype)) for i in range(len(X))]
        fwd = [net.forward(X[i:i + 1]).copy() for i in range(len(X))]
        for i in range(len(X)):
            np.testing.assert_array_equal(rows[i], fwd[i])
        outs.append(np.concatenate(rows))
        assert_close(outs[-1], RefNet.from_net(net).predict(X), dtype)
        assert_close(outs[-1], net.predict(X), dtype)
    assert outs[0].tobytes() == outs[1].tobytes() == outs[2].tobytes()


def test_predict_converts_what_it_cannot_take_as_is():
    net = dp.Network([6, 5, 4], activation="tanh", dtype="float32", seed=0)
    X = np.random.default_rng(0).normal(size=(3, 6)).astype(np.float32)
    expected = net.predict(X)
    for variant in (X.tolist(), X.astype(np.float64), np.asfortranarray(X), X.astype(">f4"),
                    np.repeat(X, 2, axis=1)[:, ::2], X.view(np.matrix)):
        np.testing.assert_array_equal(net.predict(variant), expected)
    np.testing.assert_array_equal(net.predict(X[1:2]), expected[1:2])
    with pytest.raises(ValueError, match="shape"):
        net.predict(np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match="empty"):
        net.predict(np.zeros((0, 6), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        net.predict(np.full((1, 6), np.nan, np.float32))


def test_every_array_takes_the_one_normalisation_path():
    """X, Y, grad, sample weights and validation data: an exact array (the binding's exact() test,
    also predict's) is used as it is; anything else is converted, with the argument named."""
    net = dp.Network([3, 4, 2], seed=0)  # float32
    X = np.ones((5, 3), np.float32)
    Y = np.zeros((5, 2), np.float32)
    exact = net._core.exact
    assert exact(X, 0, 3) and exact(X, 5, 3) and exact(np.ones(5, np.float32), 5, 0)
    for x, rows, cols in ((X.astype(np.float64), 0, 3), (np.asfortranarray(np.ones((5, 3), np.float32)), 0, 3),
                          (X.view(np.matrix), 0, 3), (X.astype(">f4"), 0, 3), (X, 4, 3), (X, 0, 2),
                          (X[:0], 0, 3), (X.tolist(), 0, 3), (np.ones((5, 1), np.float32), 5, 0),
                          (np.ones(4, np.float32), 5, 0)):
        assert not exact(x, rows, cols)
    assert net._array(X, "X", 0, 3) is X
    assert net._array(X.astype(np.float64), "X", 0, 3).dtype == np.float32
    big = np.ones(5)
    big[3] = 1e300
    with pytest.raises(ValueError, match=r"sample_weight: values overflow float32"):
        net.backward(X, Y, sample_weight=big)
    with pytest.raises(ValueError, match=r"sample_weight_val: values overflow float32"):
        net.fit(X, Y, lr=0.1, validation_data=(X, Y, big))
    with pytest.raises(ValueError, match=r"X_val: values overflow float32"):
        net.fit(X, Y, lr=0.1, validation_data=(big.reshape(5, 1) * np.ones((1, 3)), Y))
    with pytest.raises(ValueError, match=r"grad: expected shape \(batch, 2\), got \(5, 3\)"):
        net.backward_from_output_grad(X)
    with pytest.raises(ValueError, match=r"sample_weight: expected a 1-D array of 5 weights \(one per row of X\), got shape \(5, 1\)"):
        net.loss(X, Y, sample_weight=np.ones((5, 1)))


def test_predict_from_several_threads():
    net = dp.Network([20, 64, 32, 5], activation="tanh", dtype="float64", seed=0)
    inputs = [np.random.default_rng(i).normal(size=(50 + i, 20)) for i in range(6)]
    expected = [net.predict(x) for x in inputs]
    results = {}
    barrier = threading.Barrier(len(inputs))
    errors = []

    def work(i):
        try:
            barrier.wait()
            outs = [net.predict(inputs[i]) for _ in range(30)]
            results[i] = outs
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i, outs in results.items():
        for o in outs:
            np.testing.assert_array_equal(o, expected[i])
    assert len(results) == len(inputs)


# --- input conversion ----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_inputs_lists_ints_and_layouts(dtype):
    rng = np.random.default_rng(0)
    net = dp.Network([4, 5, 3], activation="tanh", dtype=dtype, seed=0)
    big = rng.normal(size=(12, 9)).astype(np.float32).astype(np.float64)  # exact in both dtypes
    X = np.ascontiguousarray(big[::2, 1:8:2])  # [6, 4]
    Y = rng.normal(size=(6, 3)).astype(np.float32).astype(np.float64)
    ref_out = net.forward(X.astype(dtype))
    ref_loss = net.backward(X.astype(dtype), Y)
    ref_grad = net.grad.copy()

    def check(Xin, Yin=Y):
        np.testing.assert_array_equal(net.forward(Xin), ref_out)
        np.testing.assert_array_equal(net.predict(Xin), ref_out)
        assert net.backward(Xin, Yin) == ref_loss
        np.testing.assert_array_equal(net.grad, ref_grad)

    check(X.astype(dtype))                      # C-contiguous, same dtype (used without copy)
    check(X.tolist(), Y.tolist())               # nested lists
    check(np.asfortranarray(X.astype(dtype)))   # Fortran order
    check(big.astype(dtype)[::2, 1:8:2])        # non-contiguous slice
    check(big[::2, 1:8:2])                      # non-contiguous and other float dtype
    other = np.float32 if dtype == "float64" else np.float64
    check(X.astype(other), Y.astype(np.float32))  # the other float dtype, converted
    check(X.astype(dtype), Y.astype(other))

    Xi = rng.integers(0, 4, size=(6, 4))
    for int_dtype in (np.int64, np.int32, np.int16, np.uint8, bool):
        Xc = Xi.astype(int_dtype)
        np.testing.assert_array_equal(net.forward(Xc), net.forward(Xc.astype(dtype)))


def test_float32_c_contiguous_input_works_and_is_not_modified():
    net = dp.Network([4, 3], dtype="float32", seed=0)
    X = np.arange(8, dtype=np.float32).reshape(2, 4)
    keep = X.copy()
    net.forward(X)
    net.backward(X, np.zeros((2, 3), np.float32))
    net.fit(X, np.zeros((2, 3), np.float32), epochs=2, batch_size=1, lr=0.01)
    np.testing.assert_array_equal(X, keep)


def test_read_only_input_accepted():
    net = dp.Network([4, 3], dtype="float64", seed=0)
    X = np.ones((2, 4))
    X.flags.writeable = False
    Y = np.zeros((2, 3))
    Y.flags.writeable = False
    net.backward(X, Y)
    net.fit(X, Y, epochs=1, lr=0.01)


def test_module_functions():
    n = dp.get_num_threads()
    assert isinstance(n, int) and n >= 1
    level = dp.get_kernel_level()
    assert level in ("portable", "avx2", "avx512")
    assert isinstance(dp.get_include(), str)
    assert isinstance(dp.get_cmake_dir(), str)


def _threads_in_subprocess(env_threads):
    import os
    env = dict(os.environ)
    env.pop("DELTAPROP_NUM_THREADS", None)
    if env_threads is not None:
        env["DELTAPROP_NUM_THREADS"] = env_threads
    code = "import deltaprop as dp; print(dp.get_num_threads())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    return int(out.stdout)


def test_default_thread_count_is_the_cpus_this_process_may_use():
    import os
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no sched_getaffinity on this platform")
    assert _threads_in_subprocess(None) == len(os.sched_getaffinity(0))
    assert _threads_in_subprocess("3") == 3


def test_set_num_threads(restore_threads):
    dp.set_num_threads(3)
    assert dp.get_num_threads() == 3
    dp.set_num_threads(1)
    assert dp.get_num_threads() == 1
    with pytest.raises(ValueError, match="n: expected a thread count >= 0, got -1"):
        dp.set_num_threads(-1)
    with pytest.raises(TypeError, match="n: expected an integer"):
        dp.set_num_threads(2.5)
    assert dp.get_num_threads() == 1
    dp.set_num_threads(0)  # back to the default
    import os
    assert dp.get_num_threads() == _threads_in_subprocess(os.environ.get("DELTAPROP_NUM_THREADS"))


@pytest.mark.parametrize("level", ["portable", "avx2", "avx512"])
def test_kernel_levels_agree(level):
    before = dp.get_kernel_level()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(37, 33))
    y = rng.integers(0, 7, 37)
    net = dp.Network([33, 65, 7], activation="tanh", loss="cross_entropy", dtype="float64", seed=0)
    ref = RefNet.from_net(net)
    cost, grads, *_ = ref.backward(X, y, 0.1)
    try:
        try:
            dp.set_kernel_level(level)
        except (ValueError, RuntimeError) as exc:
            pytest.skip(f"{level} kernels unavailable here: {exc}")
        assert_close(net.backward(X, y, l2=0.1), cost, "float64")
        assert_close(net.grad, RefNet.flatten(grads), "float64")
    finally:
        dp.set_kernel_level("auto")
    assert dp.get_kernel_level() == before
