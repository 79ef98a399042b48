# SPDX-License-Identifier: MIT
"""deltaprop: fast, transparent backpropagation for dense networks (a C++ core with a numpy API)."""
from ._network import ACTIVATIONS, INITS, LOSSES, GradientCheck, Network
from ._runtime import (
    get_cmake_dir,
    get_include,
    get_kernel_level,
    get_library_dir,
    get_num_threads,
    set_kernel_level,
    set_num_threads,
)
from . import datasets

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "INITS",
    "LOSSES",
    "GradientCheck",
    "Network",
    "datasets",
    "get_cmake_dir",
    "get_include",
    "get_kernel_level",
    "get_library_dir",
    "get_num_threads",
    "set_kernel_level",
    "set_num_threads",
    "__version__",
]
