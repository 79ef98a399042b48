# SPDX-License-Identifier: MIT
"""The lessons in examples/learn run and their claims hold; python -m deltaprop --plot writes a PNG.

Every lesson runs as its own process with this interpreter (the installed package), in a temporary
directory. Only the pictures (lesson 5, --plot) need matplotlib; those tests skip without it.
"""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LESSONS = REPO / "examples" / "learn"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# lesson file -> (extra arguments, lines its output must contain)
NUMERIC_LESSONS = {
    "01_gradient_descent_1d.py": ([], [
        "  1        -2.600000        3.000000        8.600000       11.400000",
        " 12         2.518964        3.000000        2.518964      -59.412703",
        "ok: eta=0.5 reaches w = 3 in one step and stays",
        "ok: eta=1.1 diverges: the sign alternates and |w - 3| grows by 1.2 each step",
        "ok: for every eta, deltaprop's weight follows w <- w - eta f'(w) to float64 rounding",
        "lesson 1: all claims hold",
    ]),
    "02_chain_rule_one_weight.py": ([], [
        "ok: the chain-rule product equals backpropagation's dW(2)[0, 1]",
        "ok: the sum over paths equals backpropagation's dW(1)[1, 2]",
        "ok: for every parameter, the mean of the per-sample gradients equals the batch gradient",
        "lesson 2: all claims hold",
    ]),
    "03_delta_recursion.py": ([], [
        "ok: the loop's cost equals net.backward(X, Y, l2=λ)",
        "ok: D(1) and Db(1) of the loop equal net.gradients[0]",
        "ok: layer 3: λ adds (λ/m) W(3) to the weight gradient and nothing to the bias gradient",
        "ok: backpropagation agrees with float64 central differences",
        "lesson 3: all claims hold",
    ]),
    "04_why_vectorise.py": (["--samples", "300"], [
        "m = 300 samples",
        "per-sample loop (lesson 3, numpy)",
        "net.backward(X, Y, l2=λ) (deltaprop)",
        "ok: the three versions give the same cost",
        "ok: and the same gradients D(3), Db(3)",
        "lesson 4: all claims hold",
    ]),
}
PICTURE_LESSON = "05_watch_it_learn.py"

# Makes every gradient deltaprop computes 1% too large: each numeric lesson must notice and fail.
_WRONG_GRADIENTS = """
import runpy, sys
import deltaprop as dp
backward = dp.Network.backward
def wrong(self, *args, **kwargs):
    loss = backward(self, *args, **kwargs)
    self.grad[:] *= 1.01
    return loss
dp.Network.backward = wrong
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""

# Runs a script or python -m deltaprop as if matplotlib were not installed.
_NO_MATPLOTLIB = """
import runpy, sys
sys.modules["matplotlib"] = None
sys.argv = sys.argv[1:]
if sys.argv[0] == "-m":
    sys.argv = sys.argv[1:]
    runpy.run_module("deltaprop", run_name="__main__", alter_sys=True)
else:
    runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _run(args, cwd):
    """Run this interpreter with args in cwd (no bytecode files); returns the CompletedProcess."""
    return subprocess.run([sys.executable, "-B", *map(str, args)], cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, encoding="utf-8", timeout=600)


def _run_ok(args, cwd):
    proc = _run(args, cwd)
    assert proc.returncode == 0, f"{args} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _assert_png(path: Path):
    """path is a PNG image of non-zero size; returns (width, height)."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path}: not a PNG file"
    assert data[12:16] == b"IHDR", f"{path}: no IHDR chunk first"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 0 and height > 0, f"{path}: {width}x{height}"
    assert data[-8:-4] == b"IEND", f"{path}: truncated (no IEND chunk at the end)"
    from matplotlib.image import imread

    pixels = imread(path)
    assert pixels.shape[:2] == (height, width)
    assert pixels.std() > 0, f"{path}: a blank image"
    return width, height


def test_every_lesson_is_tested_and_documented():
    lessons = sorted(p.name for p in LESSONS.glob("*.py"))
    assert lessons == sorted([*NUMERIC_LESSONS, PICTURE_LESSON])
    for name in lessons:
        doc = ast.get_docstring(ast.parse((LESSONS / name).read_text(encoding="utf-8")))
        assert doc and doc.startswith(f"Lesson {int(name[:2])}: "), name
        assert "W(" in doc and "z(" in doc, f"{name}: the docstring states the equations in the README's notation"
        assert f"Run: python {name}" in doc, name


def test_docs_link_every_lesson_in_order():
    guide = (REPO / "docs" / "learn.md").read_text(encoding="utf-8")
    links = [guide.index(f"](../examples/learn/{name})") for name in sorted([*NUMERIC_LESSONS, PICTURE_LESSON])]
    assert links == sorted(links)
    assert "(images/spirals.png)" in guide and (REPO / "docs" / "images" / "spirals.png").is_file()
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "](docs/learn.md)" in readme and "](docs/images/spirals.png)" in readme
    assert (REPO / "docs" / "images" / "spirals.png").stat().st_size < 200_000


@pytest.mark.parametrize("name", sorted(NUMERIC_LESSONS))
def test_lesson_runs_and_its_claims_hold(name, tmp_path):
    args, expected = NUMERIC_LESSONS[name]
    out = _run_ok([LESSONS / name, *args], tmp_path)
    for line in expected:
        assert line in out, f"{name}: missing {line!r} in\n{out}"
    assert "FAILED" not in out
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", sorted(NUMERIC_LESSONS))
def test_lesson_fails_when_the_gradients_are_wrong(name, tmp_path):
    args, _ = NUMERIC_LESSONS[name]
    proc = _run(["-c", _WRONG_GRADIENTS, LESSONS / name, *args], tmp_path)
    assert proc.returncode == 1, f"{name} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "FAILED: " in proc.stderr
    assert "all claims hold" not in proc.stdout


def test_lesson_5_writes_its_pictures(tmp_path):
    pytest.importorskip("matplotlib")
    out = _run_ok([LESSONS / PICTURE_LESSON, tmp_path / "pictures"], tmp_path)
    for line in ("epoch   1  loss", "epoch  40  loss", "ok: the 6 files are PNG images of non-zero size",
                 "ok: the test accuracy", "lesson 5: all claims hold"):
        assert line in out, f"missing {line!r} in\n{out}"
    names = sorted(p.name for p in (tmp_path / "pictures").iterdir())
    assert names == ["loss.png", "regions-epoch-01.png", "regions-epoch-03.png", "regions-epoch-12.png",
                     "regions-epoch-40.png", "spirals.png"]
    sizes = {name: _assert_png(tmp_path / "pictures" / name) for name in names}
    assert sizes["spirals.png"][0] > 3 * sizes["regions-epoch-01.png"][0]     # one row of five panels
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pictures"]


def test_main_plot_writes_the_picture(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "spirals.png"
    out = _run_ok(["-m", "deltaprop", "--plot", path], tmp_path)
    assert "final test accuracy" in out
    assert f"wrote {path}: decision regions at epochs 1, 3, 12, 40 and the loss curve" in out
    width, height = _assert_png(path)
    assert width > 3 * height


def test_plot_without_matplotlib_is_a_clear_error(tmp_path):
    path = tmp_path / "spirals.png"
    proc = _run(["-c", _NO_MATPLOTLIB, "-m", "deltaprop", "--plot", path], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "--plot: drawing pictures needs matplotlib" in proc.stderr
    assert "pip install 'deltaprop[plot]'" in proc.stderr
    assert "epoch" not in proc.stdout                 # refused before training
    assert not path.exists()

    proc = _run(["-c", _NO_MATPLOTLIB, LESSONS / PICTURE_LESSON, tmp_path / "pictures"], tmp_path)
    assert proc.returncode == 1
    assert "lesson 5: drawing pictures needs matplotlib" in proc.stderr
    assert "pip install 'deltaprop[plot]'" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_plot_into_a_missing_directory_is_refused_before_training(tmp_path):
    path = tmp_path / "missing" / "spirals.png"
    proc = _run(["-m", "deltaprop", "--plot", path], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert f"--plot: expected a file in an existing directory, got '{path}'" in proc.stderr
    assert "epoch" not in proc.stdout
    assert list(tmp_path.iterdir()) == []


def test_import_deltaprop_does_not_import_matplotlib(tmp_path):
    code = ("import sys, deltaprop, deltaprop.__main__, deltaprop._plot\n"
            "assert 'matplotlib' not in sys.modules, sorted(m for m in sys.modules if 'matplotlib' in m)\n")
    _run_ok(["-c", code], tmp_path)


def test_snapshot_epochs():
    from deltaprop import _plot

    assert _plot.snapshot_epochs(40) == [1, 3, 12, 40]
    assert _plot.snapshot_epochs(1) == [1]
    assert _plot.snapshot_epochs(2) == [1, 2]
    assert _plot.snapshot_epochs(100, count=3) == [1, 10, 100]
    with pytest.raises(ValueError, match="epochs: expected an integer >= 1, got 0"):
        _plot.snapshot_epochs(0)
