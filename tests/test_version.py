# SPDX-License-Identifier: MIT
"""One version number: DP_VERSION_* in deltaprop.h, from which the package metadata (pyproject),
dp_version(), deltaprop.__version__, the CMake package version file and the pkg-config file derive."""
from __future__ import annotations

import importlib.metadata
import os
import re
from pathlib import Path

import pytest

import deltaprop as dp
from deltaprop import _core

REPO = Path(__file__).resolve().parents[1]


def _header_version(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    parts = [re.search(rf"^#define DP_VERSION_{p} +(\d+)\s*$", text, re.M) for p in ("MAJOR", "MINOR", "PATCH")]
    assert all(parts), f"{path}: no DP_VERSION_MAJOR/MINOR/PATCH lines"
    return ".".join(m.group(1) for m in parts if m)


def test_all_versions_agree():
    header = _header_version(Path(dp.get_include()) / "deltaprop" / "deltaprop.h")
    cmake_file = Path(dp.get_cmake_dir()) / "deltaprop-config-version.cmake"
    cmake = re.search(r'set\(PACKAGE_VERSION "([^"]+)"\)', cmake_file.read_text(encoding="utf-8"))
    pc_file = Path(dp.get_library_dir()) / "pkgconfig" / "deltaprop.pc"
    pc = re.search(r"^Version: *(\S+)\s*$", pc_file.read_text(encoding="utf-8"), re.M)
    assert cmake and pc
    found = {
        "deltaprop.h DP_VERSION_*": header,
        "importlib.metadata (pyproject)": importlib.metadata.version("deltaprop"),
        "deltaprop.__version__": dp.__version__,
        "_core.version() (dp_version)": _core.version(),
        "CMake deltaprop-config-version.cmake": cmake.group(1),
        "pkg-config deltaprop.pc": pc.group(1),
    }
    assert len(set(found.values())) == 1, found
    assert re.fullmatch(r"\d+\.\d+\.\d+", header), header


def test_installed_header_is_the_source_header():
    source = REPO / "csrc" / "include" / "deltaprop" / "deltaprop.h"
    if not source.is_file():
        pytest.skip("no source tree")
    assert _header_version(source) == dp.__version__, "reinstall the package after changing the version"


def test_version_is_not_written_elsewhere():
    """The places that used to carry a literal copy now derive it."""
    if not (REPO / "pyproject.toml").is_file():
        pytest.skip("no source tree")
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert not re.search(r"^version *=", pyproject, re.M) and 'dynamic = ["version"]' in pyproject
    cmake = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    assert not re.search(r"project\([^)]*VERSION +\d", cmake)
    assert not re.search(r"dp_version\(void\) *\{[^}]*\"\d", (REPO / "csrc" / "src" / "c_api.cpp").read_text(encoding="utf-8"))
    assert not re.search(r"__version__[^=\n]*= *[\"']", (REPO / "python" / "deltaprop" / "__init__.py").read_text(encoding="utf-8"))
    assert os.path.isfile(REPO / "cmake" / "deltaprop.pc.in")
    assert "@PROJECT_VERSION@" in (REPO / "cmake" / "deltaprop.pc.in").read_text(encoding="utf-8")
