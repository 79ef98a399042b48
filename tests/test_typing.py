# SPDX-License-Identifier: MIT
"""Type information shipped with the package: py.typed, and a stub of the compiled module that names
everything it defines (regenerate it with tools/gen_stubs.py after changing the bindings). mypy --strict
itself runs in CI (.ci/run) over the package and examples/typed_usage.py."""
from __future__ import annotations

import ast
import inspect
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, Set

import pytest

import deltaprop as dp
from deltaprop import _core

REPO = Path(__file__).resolve().parents[1]
SOURCE_STUB = REPO / "python" / "deltaprop" / "_core.pyi"
INSTALLED = Path(dp.__file__).resolve().parent


def _stub_names(text: str) -> Dict[str, Set[str]]:
    """{"": top-level functions and classes, "Class": its methods and properties} of a stub."""
    names: Dict[str, Set[str]] = {"": set()}
    for node in ast.parse(text).body:
        if isinstance(node, ast.FunctionDef):
            names[""].add(node.name)
        elif isinstance(node, ast.ClassDef):
            names[""].add(node.name)
            names[node.name] = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
    return names


def _module_names() -> Dict[str, Set[str]]:
    """The same names, from the compiled module itself (private pybind11 internals left out)."""
    names: Dict[str, Set[str]] = {"": set()}
    for name, obj in vars(_core).items():
        if name.startswith("_"):
            continue
        if inspect.isclass(obj):
            names[""].add(name)
            names[name] = {k for k in vars(obj) if not k.startswith("_") or k == "__init__"}
        elif callable(obj):
            names[""].add(name)
    return names


def _stub_text() -> str:
    if SOURCE_STUB.is_file():
        return SOURCE_STUB.read_text(encoding="utf-8")
    return (INSTALLED / "_core.pyi").read_text(encoding="utf-8")


def test_package_ships_type_information():
    assert (INSTALLED / "py.typed").is_file()
    assert (INSTALLED / "_core.pyi").is_file()


def test_installed_stub_is_the_committed_one():
    if not SOURCE_STUB.is_file():
        pytest.skip("no source tree")
    assert (INSTALLED / "_core.pyi").read_text(encoding="utf-8") == SOURCE_STUB.read_text(encoding="utf-8"), \
        "reinstall the package (pip install .) after regenerating the stub"


def test_stub_names_every_function_class_and_method_of_the_module():
    stub, module = _stub_names(_stub_text()), _module_names()
    assert module[""] >= {"Net", "Optimizer", "Schedule", "version"}  # the introspection itself works
    missing = {scope or "<module>": sorted(module[scope] - stub.get(scope, set()))
               for scope in module if module[scope] - stub.get(scope, set())}
    stale = {scope or "<module>": sorted(stub[scope] - module.get(scope, set()))
             for scope in stub if stub[scope] - module.get(scope, set())}
    hint = "regenerate it: pip install . pybind11-stubgen && python tools/gen_stubs.py"
    assert not missing, f"the stub lacks {missing}; {hint}"
    assert not stale, f"the stub names what the module no longer has: {stale}; {hint}"


def test_stub_check_sees_a_missing_method():
    """The comparison above can fail: a stub without one method of Net is caught."""
    text = _stub_text().replace("    def clone(self)", "    def _renamed_clone(self)")
    assert "clone" in _module_names()["Net"] and "clone" not in _stub_names(text)["Net"]


def test_typed_example_runs():
    example = REPO / "examples" / "typed_usage.py"
    if not example.is_file():
        pytest.skip("no source tree")
    proc = subprocess.run([sys.executable, str(example)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, cwd=os.path.dirname(example), timeout=300)
    assert proc.returncode == 0, proc.stdout
    assert "predicts the same: True" in proc.stdout
