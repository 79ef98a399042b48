# SPDX-License-Identifier: MIT
"""Model files written by deltaprop 0.1.0 (format version 1) still load bit for bit.

tests/fixtures/*.dpm were saved by the 0.1.0 release (tests/fixtures/make_model_files_0_1.py), each
with a JSON beside it of what 0.1.0 saw: the parameters, the velocity, the predictions and the result
of training on from the file. Loading must give the same parameters and velocity bit for bit, the same
network (predictions equal to a network rebuilt from those parameters, and to 0.1.0's within rounding),
the same shuffle generator (re-saving reproduces the file byte for byte, and training on follows
0.1.0's run), and re-saving without changes must write the same version 1 bytes.
"""
from __future__ import annotations

import hashlib
import json
import pathlib
import zlib

import numpy as np
import pytest

import deltaprop as dp

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
NAMES = [f"{net}_{dtype}_{opt}" for net in ("ce352", "bce241") for dtype in ("float32", "float64")
         for opt in ("opt", "noopt")]
OPT_NAMES = [n for n in NAMES if n.endswith("_opt")]
# Room for later kernels that round differently; a wrong parameter, layer or shuffle order is far off
# (test_continued_training_needs_the_saved_generator shows how far).
RTOL = {"float32": 1e-4, "float64": 1e-10}


def _fixture(name):
    raw = (FIXTURES / f"{name}.dpm").read_bytes()
    with open(FIXTURES / f"{name}.json") as f:
        meta = json.load(f)
    return raw, meta


def _array(hex_bytes, dtype):
    return np.frombuffer(bytes.fromhex(hex_bytes), dtype=np.dtype(dtype).newbyteorder("<"))


def _data(meta):
    return np.array(meta["X"], dtype=np.float64), np.array(meta["Y"], dtype=np.float64)


def test_fixture_set():
    """The eight files are there, tiny, intact, written by 0.1.0 and in format version 1."""
    found = sorted(p.stem for p in FIXTURES.glob("*.dpm"))
    assert found == sorted(NAMES)
    for name in NAMES:
        raw, meta = _fixture(name)
        assert meta["written_by"] == "deltaprop 0.1.0"
        assert len(raw) == meta["size"] < 4096
        assert (FIXTURES / f"{name}.json").stat().st_size < 4096
        assert hashlib.sha256(raw).hexdigest() == meta["sha256"]
        assert raw[:8] == b"DPMODEL\0"
        assert int.from_bytes(raw[8:12], "little") == 1  # version
        assert int.from_bytes(raw[28:32], "little") == (1 if meta["optimizer"] else 0)  # flags
        assert zlib.crc32(raw[:-4]) == int.from_bytes(raw[-4:], "little")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("source", ["file", "bytes"])
def test_loads_bit_for_bit(name, source, tmp_path):
    raw, meta = _fixture(name)
    if source == "file":
        path = tmp_path / "copy.dpm"  # a copy, so a writer bug could never touch the fixture
        path.write_bytes(raw)
        net = dp.Network.load(str(path))
    else:
        net = dp.Network.from_bytes(raw)
    assert list(net.sizes) == meta["sizes"]
    assert list(net.activations) == meta["activations"]
    assert net.loss_name == meta["loss"]
    assert net.init == meta["init"]
    assert net.dtype == np.dtype(meta["dtype"])
    assert net.params.tobytes() == bytes.fromhex(meta["params"])
    if meta["optimizer"]:
        assert net.velocity.tobytes() == bytes.fromhex(meta["velocity"])
        assert np.any(net.velocity != 0)
    else:
        assert not np.any(net.velocity)  # no optimizer state in the file: a fresh start


@pytest.mark.parametrize("name", NAMES)
def test_predicts_the_same(name):
    raw, meta = _fixture(name)
    X, _ = _data(meta)
    net = dp.Network.from_bytes(raw)
    got = net.predict(X)
    assert got.dtype == np.dtype(meta["dtype"])
    # The same network as one built from scratch with the file's parameters, bit for bit ...
    rebuilt = dp.Network(meta["sizes"], activation=meta["activations"], loss=meta["loss"], dtype=meta["dtype"],
                         init=meta["init"], seed=0)
    rebuilt.params[:] = _array(meta["params"], meta["dtype"])
    assert got.tobytes() == rebuilt.predict(X).tobytes()
    # ... and the predictions 0.1.0 made from it.
    want = _array(meta["predict"], meta["dtype"]).reshape(got.shape)
    np.testing.assert_allclose(got, want, rtol=RTOL[meta["dtype"]], atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_resave_writes_the_same_bytes(name, tmp_path):
    raw, meta = _fixture(name)
    net = dp.Network.from_bytes(raw)
    # With the optimizer state this includes the shuffle generator's state.
    assert net.to_bytes(meta["optimizer"]) == raw
    path = tmp_path / "again.dpm"
    net.save(str(path), optimizer=meta["optimizer"])
    assert path.read_bytes() == raw
    if meta["optimizer"]:
        # Without its optimizer state the same network is the smaller version 1 file.
        small = net.to_bytes(False)
        assert int.from_bytes(small[8:12], "little") == 1 and len(small) < len(raw)
        assert dp.Network.from_bytes(small).params.tobytes() == net.params.tobytes()


@pytest.mark.parametrize("name", OPT_NAMES)
def test_continued_training(name):
    raw, meta = _fixture(name)
    X, Y = _data(meta)
    a = dp.Network.from_bytes(raw)
    b = dp.Network.from_bytes(raw)
    la = a.fit(X, Y, **meta["continue"])
    lb = b.fit(X, Y, **meta["continue"])
    # Deterministic: two loads of the file train on identically.
    assert la == lb
    assert a.params.tobytes() == b.params.tobytes()
    assert a.velocity.tobytes() == b.velocity.tobytes()
    # And as 0.1.0 trained on from the same file (same velocity, same shuffle order).
    rtol = RTOL[meta["dtype"]]
    np.testing.assert_allclose(la, meta["continued_losses"], rtol=rtol, atol=0)
    np.testing.assert_allclose(a.params, _array(meta["continued_params"], meta["dtype"]), rtol=rtol, atol=rtol)
    np.testing.assert_allclose(a.velocity, _array(meta["continued_velocity"], meta["dtype"]), rtol=rtol,
                               atol=rtol)


@pytest.mark.parametrize("name", OPT_NAMES)
def test_continued_training_needs_the_saved_generator(name):
    """The comparison above can fail: another shuffle order, or no velocity, lands far outside RTOL."""
    raw, meta = _fixture(name)
    X, Y = _data(meta)
    want = np.array(meta["continued_losses"])
    # The saved velocity, another shuffle order.
    other_order = np.array(dp.Network.from_bytes(raw).fit(X, Y, seed=12345, **meta["continue"]))
    # The same parameters without the optimizer state (zero velocity, generator reseeded).
    stateless = dp.Network.from_bytes(dp.Network.from_bytes(raw).to_bytes(False))
    without = np.array(stateless.fit(X, Y, **meta["continue"]))
    for other in (other_order, without):
        assert np.max(np.abs(other - want) / np.abs(want)) > 10 * RTOL[meta["dtype"]]
