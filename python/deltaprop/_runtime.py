# SPDX-License-Identifier: MIT
"""Process-wide settings of the native core, and where its headers and CMake package are installed."""
from __future__ import annotations

import operator
import os
from typing import Dict

from . import _core

_LEVELS = ("auto", "portable", "avx2", "avx512")
MAX_THREADS = 1024  # the thread pool's limit
_HERE = os.path.dirname(os.path.abspath(__file__))


def set_num_threads(n: int) -> None:
    """Threads used by the core's kernels: n >= 1, or 0 for the default (DELTAPROP_NUM_THREADS, else the
    CPUs this process may use). Results are bitwise identical for any thread count."""
    if isinstance(n, bool):
        raise TypeError(f"n: expected an integer, got {n!r}")
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"n: expected an integer, got {type(n).__name__} {n!r}") from None
    if n < 0:
        raise ValueError(f"n: expected a thread count >= 0, got {n}")
    if n > MAX_THREADS:
        raise ValueError(f"n: at most {MAX_THREADS} threads, got {n}")
    _core.set_num_threads(n)


def get_num_threads() -> int:
    return _core.get_num_threads()


def set_kernel_level(level: str) -> None:
    """Force the kernels: "portable", "avx2" or "avx512" (ValueError if the CPU lacks it), or "auto":
    DELTAPROP_KERNEL if set, else the fastest level of each kernel family on this CPU."""
    if not isinstance(level, str) or level not in _LEVELS:
        raise ValueError(f"level: expected one of {', '.join(_LEVELS)}, got {level!r}")
    _core.set_kernel_level(_LEVELS.index(level))


def get_kernel_level() -> str:
    """The kernel level in use: "portable", "avx2" or "avx512" (the forced level; automatically, the
    widest build any kernel family runs: see get_kernel_levels)."""
    return _LEVELS[_core.get_kernel_level()]


_FAMILIES = ("gemm_float32", "elementwise", "gemm_float64")


def get_kernel_levels() -> Dict[str, str]:
    """The build each kernel family runs now: {"gemm_float32": ..., "gemm_float64": ..., "elementwise":
    ...}, each "portable", "avx2" or "avx512". Automatically they may differ (on an AVX-512 CPU the
    elementwise kernels, which have no avx512 build, run avx2)."""
    return {name: _LEVELS[_core.get_kernel_family_level(i)] for i, name in enumerate(_FAMILIES)}


def get_include() -> str:
    """Directory holding deltaprop/deltaprop.h and deltaprop/deltaprop.hpp."""
    return os.path.join(_HERE, "include")


def get_library_dir() -> str:
    """Directory holding the static library libdeltaprop.a."""
    return os.path.join(_HERE, "lib")


def get_cmake_dir() -> str:
    """Directory for find_package(deltaprop CONFIG): pass it as deltaprop_DIR or in CMAKE_PREFIX_PATH."""
    return os.path.join(_HERE, "lib", "cmake", "deltaprop")
