# SPDX-License-Identifier: MIT
"""Data-parallel training over MPI (deltaprop.distributed): each test launches tests/mpi_worker.py under
mpirun on this machine only (shared memory and loopback), bounded in time, and reads what every rank
wrote."""
import os
import pickle
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("mpi4py")
MPIRUN = shutil.which("mpirun")
if MPIRUN is None:
    pytest.skip("mpirun not found (Debian: apt-get install openmpi-bin libopenmpi-dev)", allow_module_level=True)

import deltaprop as dp  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "mpi_worker.py")
ENV = {
    "OMPI_ALLOW_RUN_AS_ROOT": "1",
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    "OMPI_MCA_pml": "ob1",
    "OMPI_MCA_btl": "self,vader",
    "OMPI_MCA_oob_tcp_if_include": "lo",
    "OMPI_MCA_btl_tcp_if_include": "lo",
    "OMPI_MCA_rmaps_base_oversubscribe": "1",
    "OMPI_MCA_mpi_yield_when_idle": "1",  # more ranks than cores: a waiting rank yields its core
    "DELTAPROP_NUM_THREADS": "1",
}
TIMEOUT = 150  # seconds for one mpirun launch


def mpirun(ranks, *command, check=True):
    """Run command on `ranks` ranks; returns its output (check=False: its exit status and output). The
    whole process group is killed if it outlives TIMEOUT, and (check) a non-zero exit fails the test."""
    proc = subprocess.Popen([MPIRUN, "-n", str(ranks), "--oversubscribe", "--bind-to", "none", *map(str, command)],
                            env=dict(os.environ, **ENV), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"mpirun -n {ranks} {command} did not finish in {TIMEOUT} s:\n{out.decode(errors='replace')}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = out.decode(errors="replace")
    if not check:
        return proc.returncode, text
    assert proc.returncode == 0, text
    return text


def launch(scenario, ranks, tmp_path, *args):
    """Run the worker on `ranks` ranks; returns one result dict per rank."""
    mpirun(ranks, sys.executable, WORKER, scenario, tmp_path, *args)
    results = []
    for r in range(ranks):
        with open(os.path.join(tmp_path, f"{scenario}-{r}.pkl"), "rb") as f:
            results.append(pickle.load(f))
    return results


@pytest.fixture(scope="module")
def replicated_runs(tmp_path_factory):
    return {p: launch("replicated", p, tmp_path_factory.mktemp(f"replicated{p}")) for p in (1, 2, 3, 4)}


@pytest.fixture(scope="module")
def mixed_runs(tmp_path_factory):
    return {p: launch("mixed", p, tmp_path_factory.mktemp(f"mixed{p}")) for p in (1, 3)}


def test_import_deltaprop_does_not_import_mpi4py():
    code = "import sys, deltaprop; sys.exit(1 if any(m.startswith('mpi4py') for m in sys.modules) else 0)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_reproducible_replicated_is_bitwise_identical_for_1_to_4_ranks_and_1_or_2_threads(replicated_runs):
    reference = replicated_runs[1][0]
    assert set(reference) == {(1, "sgd"), (1, "adam"), (2, "sgd"), (2, "adam")}
    for key, (params, losses, val_loss, _) in reference.items():
        assert np.isfinite(params).all() and losses[-1] < losses[0], key
        single_thread = reference[(1, key[1])]
        assert params.tobytes() == single_thread[0].tobytes(), f"{key}: threads changed the bits"
        for p, ranks in replicated_runs.items():
            for r, res in enumerate(ranks):
                got = res[key]
                assert got[0].tobytes() == params.tobytes(), f"{key}: rank {r} of {p} differs from one process"
                assert got[1] == losses and got[2] == val_loss, f"{key}: History of rank {r} of {p}"
            # History identical on every rank, timings included (rank 0's)
            assert all(res[key][3] == ranks[0][key][3] for res in ranks)


def test_reproducible_replicated_agrees_with_plain_fit(replicated_runs):
    """The chunked algorithm computes the same mathematics as fit without comm (up to rounding)."""
    X, y = _data(np.float32)
    Xv, yv = _data(np.float32, n=40, seed=8)
    opts = {"sgd": dp.optim.SGD(lr=0.05, momentum=0.9), "adam": dp.optim.Adam(lr=3e-3)}
    for name, opt in opts.items():
        ref = dp.Network([5, 16, 8, 3], activation="tanh", loss="cross_entropy", seed=0)
        h = ref.fit(X, y, epochs=3, batch_size=32, optimizer=opt, seed=5, l2=1e-3, clip_norm=5.0,
                    validation_data=(Xv, yv))
        params, losses, val_loss, _ = replicated_runs[1][0][(1, name)]
        np.testing.assert_allclose(params, ref.params, rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(losses, list(h), rtol=1e-4)
        np.testing.assert_allclose(val_loss, h.val_loss, rtol=1e-4)


def test_sharded_full_batch_agrees_with_one_process(mixed_runs):
    X, y = _data(np.float64)
    for reduction in ("reproducible", "fast"):
        ref = dp.Network([5, 16, 8, 3], activation="tanh", loss="cross_entropy", dtype="float64", seed=0)
        h = ref.fit(X, y, epochs=4, batch_size=None, optimizer=dp.optim.Adam(lr=1e-2), shuffle=False)
        for p, ranks in mixed_runs.items():
            first = ranks[0][("sharded-full", reduction)]
            for r, res in enumerate(ranks):
                params, losses = res[("sharded-full", reduction)]
                assert params.tobytes() == first[0].tobytes(), f"{reduction}: rank {r} of {p} differs from rank 0"
            np.testing.assert_allclose(first[0], ref.params, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(first[1], list(h), rtol=1e-10)


def test_sharded_sample_weights_agree_with_one_process(mixed_runs):
    X, y = _data(np.float64)
    ref = dp.Network([5, 16, 8, 3], activation="tanh", loss="cross_entropy", dtype="float64", seed=0)
    h = ref.fit(X, y, epochs=3, batch_size=None, lr=0.5, sample_weight=np.linspace(0.0, 2.0, len(X)), shuffle=False)
    for p, ranks in mixed_runs.items():
        first = ranks[0]["weighted"]
        assert all(res["weighted"][0].tobytes() == first[0].tobytes() for res in ranks)
        np.testing.assert_allclose(first[0], ref.params, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(first[1], list(h), rtol=1e-10)


def test_sharded_minibatches_identical_on_every_rank(mixed_runs):
    for p, ranks in mixed_runs.items():
        for reduction in ("reproducible", "fast"):
            first = ranks[0][("sharded-mini", reduction)]
            assert np.isfinite(first[0]).all() and len(first[2]) == len(first[1]) > 0
            for r, res in enumerate(ranks):
                got = res[("sharded-mini", reduction)]
                assert got[0].tobytes() == first[0].tobytes(), f"{reduction}: rank {r} of {p}"
                assert got[1:] == first[1:], f"{reduction}: History of rank {r} of {p}"


def test_fast_mode_within_rounding_and_identical_on_every_rank(mixed_runs):
    X, y = _data(np.float64)
    ref = dp.Network([5, 16, 8, 3], activation="tanh", loss="cross_entropy", dtype="float64", seed=0)
    h = ref.fit(X, y, epochs=3, batch_size=32, optimizer=dp.optim.Adam(lr=3e-3), seed=5)
    for p, ranks in mixed_runs.items():
        first = ranks[0]["fast-replicated"]
        assert all(res["fast-replicated"][0].tobytes() == first[0].tobytes() for res in ranks)
        np.testing.assert_allclose(first[0], ref.params, rtol=1e-8, atol=1e-11)
        np.testing.assert_allclose(first[1], list(h), rtol=1e-9)


def test_bad_input_on_one_rank_makes_every_rank_raise(mixed_runs):
    for p, ranks in mixed_runs.items():
        bad = min(1, p - 1)
        for r, res in enumerate(ranks):
            kind, message = res["bad-input"]
            if r == bad:
                assert kind == "ValueError" and "X" in message, message
            else:
                assert kind == "RankError" and f"rank {bad}" in message and "ValueError" in message, message
            assert res["bad-input-params-unchanged"]
            kind, message = res["replicated-differs"]
            if p > 1:
                assert kind == "ValueError" and "replicated data" in message, message
            else:
                assert kind == "ok"
            kind, message = res["bad-settings"]
            if p > 1:
                assert kind == "ValueError" and message.startswith("epochs:"), message
            else:
                assert kind == "ok"


def test_divergence_on_one_rank_makes_every_rank_raise(mixed_runs):
    for p, ranks in mixed_runs.items():
        messages = {tuple(res["diverge"]) for res in ranks}
        assert len(messages) == 1, messages  # the same error, at the same step, everywhere
        kind, message = messages.pop()
        assert kind == "DivergenceError", message
        assert all(res["diverge-finite"] for res in ranks)


def test_callback_raising_on_one_rank_makes_every_rank_raise(mixed_runs):
    for p, ranks in mixed_runs.items():
        for r, res in enumerate(ranks):
            kind, message = res["callback-raises"]
            if r == p - 1:
                assert (kind, message) == ("RuntimeError", "callback failed")
            else:
                assert kind == "RankError" and "callback failed" in message, message
            assert res["callback-raises-epochs"] == 2  # every rank stopped after the same epoch
            n, stopped, params = res["callback-stop"]
            assert (n, stopped) == (2, True)
            assert params.tobytes() == ranks[0]["callback-stop"][2].tobytes()


def _data(dtype, n=203, seed=7):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5)).astype(dtype)
    y = (np.abs(X[:, 0] + X[:, 1] * X[:, 2]) * 1.7).astype(np.int64) % 3
    return X, y


def test_ctrl_c_on_one_rank_stops_every_rank(mixed_runs):
    for p, ranks in mixed_runs.items():
        for res in ranks:
            assert res["sigint"][0] == "KeyboardInterrupt"
            assert res["sigint-history"] == (2, True)


def test_c_example_over_mpi(tmp_path):
    """examples/mpi_train.c: its shard's dp_net_backward, MPI_Allreduce on dp_net_grads, dp_net_step_with;
    built with mpicc against the installed package (deltaprop itself never links MPI)."""
    mpicc = shutil.which("mpicc")
    pkg_config = shutil.which("pkg-config") or shutil.which("pkgconf")
    if mpicc is None or pkg_config is None:
        pytest.skip("needs mpicc and pkg-config")
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(dp.get_library_dir(), "pkgconfig"))
    flags = subprocess.run([pkg_config, "--cflags", "--libs", "deltaprop"], env=env, capture_output=True,
                           text=True, check=True, timeout=60).stdout.split()
    exe = tmp_path / "mpi_train"
    build = subprocess.run([mpicc, "-std=c99", "-Wall", "-Wextra", "-Werror", os.path.join(HERE, "..", "examples",
                            "mpi_train.c"), "-o", str(exe), *flags, "-lm"], capture_output=True, text=True,
                           timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr
    for ranks in (1, 2):
        text = mpirun(ranks, exe)
        assert f"{ranks} ranks: accuracy" in text and "parameters identical on every rank: yes" in text, text


def test_python_example_same_parameters_for_1_and_3_ranks():
    """examples/mpi_train.py (the README's run): the same crc32 of the parameters on 1 and 3 ranks."""
    lines = []
    for ranks in (1, 3):
        text = mpirun(ranks, sys.executable, os.path.join(HERE, "..", "examples", "mpi_train.py"))
        assert text.count("epoch ") == 30, text  # only rank 0 prints
        lines.append(text.splitlines()[-1])
    assert "parameters identical on every rank: yes" in lines[1]
    assert lines[0].split("crc32")[1] == lines[1].split("crc32")[1], lines


@pytest.fixture(scope="module")
def overlap_runs(tmp_path_factory):
    return {p: launch("overlap", p, tmp_path_factory.mktemp(f"overlap{p}")) for p in (2, 3)}


def test_overlap_reproducible_is_bitwise_the_same_as_without(overlap_runs):
    for p, ranks in overlap_runs.items():
        keys = [k for k in ranks[0] if len(k) == 5 and k[3] == "reproducible" and not k[4]]
        assert len(keys) == 6
        for key in keys:
            off = ranks[0][key]
            assert np.isfinite(off[0]).all() and off[1][-1] < off[1][0], key
            for r, res in enumerate(ranks):
                on = res[key[:4] + (True,)]
                assert on[0].tobytes() == off[0].tobytes(), f"{key}: rank {r} of {p}, overlap changed the bits"
                assert on[1] == off[1], f"{key}: rank {r} of {p}, History"


def test_overlap_divergence_is_the_same_as_without(overlap_runs):
    for p, ranks in overlap_runs.items():
        for reduction in ("reproducible", "fast"):
            off = ranks[0][("diverge", reduction, False)]
            assert off[0][0] == "DivergenceError", off[0]
            for r, res in enumerate(ranks):
                on = res[("diverge", reduction, True)]
                assert on[0] == off[0], f"{reduction}: rank {r} of {p}"
                assert np.isfinite(on[1]).all() and on[1].tobytes() == off[1].tobytes()


def test_overlap_fast_is_identical_on_every_rank_and_within_rounding(overlap_runs):
    for p, ranks in overlap_runs.items():
        keys = [k for k in ranks[0] if len(k) == 5 and k[3] == "fast" and not k[4]]
        assert len(keys) == 6
        for key in keys:
            off, on = ranks[0][key], ranks[0][key[:4] + (True,)]
            for r, res in enumerate(ranks):
                assert res[key[:4] + (True,)][0].tobytes() == on[0].tobytes(), f"{key}: rank {r} of {p}"
            tol = 1e-5 if on[0].dtype == np.float32 else 1e-10
            np.testing.assert_allclose(on[0], off[0], rtol=tol, atol=tol)
            np.testing.assert_allclose(on[1], off[1], rtol=tol)


@pytest.mark.parametrize("ranks", [2, 3])
def test_reduction_raising_on_one_rank_makes_every_rank_raise(ranks, tmp_path):
    """An injected failure in the reduction (before the step's collective) on the last rank: every
    rank stops after the same step, that rank raising its error and the others a RankError."""
    results = launch("reduce-raises", ranks, tmp_path)
    for reduction in ("reproducible", "fast"):
        for on in (False, True):
            for r, res in enumerate(results):
                kind, message = res[(reduction, on)]
                if r == ranks - 1:
                    assert (kind, message) == ("RuntimeError", "injected failure in _stop_wish")
                else:
                    assert kind == "RankError" and "injected failure" in message, message
                params = res[(reduction, on, "params")]
                assert params.tobytes() == results[0][(reduction, on, "params")].tobytes()
    for res in results:  # a bad overlap argument: every rank raises before training
        kind, message = res["bad-overlap"]
        assert kind == "TypeError" and message.startswith("overlap: expected True or False"), message


@pytest.mark.parametrize("method, reduction, mode", [("_exchange", "fast", "plain"),
                                                     ("_exchange", "reproducible", "overlap"),
                                                     ("_layer_type", "reproducible", "overlap")])
def test_failure_inside_a_collective_aborts_the_job(method, reduction, mode, tmp_path):
    """A failure where the other ranks already wait in a collective cannot be agreed on: the failing
    rank prints its traceback and aborts the job (mpirun returns, non-zero) instead of hanging."""
    status, text = mpirun(2, sys.executable, WORKER, "collective-raises", tmp_path, method, reduction, mode,
                          check=False)
    assert status != 0, text
    assert f"injected failure in {method}" in text and "aborting the job (MPI_Abort)" in text, text
