# SPDX-License-Identifier: MIT
"""deltaprop: fast, transparent backpropagation for dense networks (a C++ core with a numpy API)."""
from ._errors import DivergenceError
from ._history import EpochRecord, History
from ._network import ACTIVATIONS, INITS, LOSSES, GradientCheck, Network
from ._runtime import (
    get_cmake_dir,
    get_include,
    get_kernel_level,
    get_kernel_levels,
    get_library_dir,
    get_num_threads,
    set_kernel_level,
    set_num_threads,
)
from . import _core, datasets, optim, schedules

__version__: str = _core.version()  # from DP_VERSION_* in deltaprop.h, as the package metadata and CMake


def _warn_env() -> None:
    """Say once, at import, which DELTAPROP_KERNEL / DELTAPROP_NUM_THREADS values were not used."""
    message = _core.env_warning()
    if message:
        import warnings

        for line in message.strip().splitlines():
            warnings.warn(f"deltaprop: {line}", RuntimeWarning, stacklevel=3)


_warn_env()

__all__ = [
    "ACTIVATIONS",
    "DivergenceError",
    "EpochRecord",
    "History",
    "INITS",
    "LOSSES",
    "GradientCheck",
    "Network",
    "datasets",
    "optim",
    "schedules",
    "get_cmake_dir",
    "get_include",
    "get_kernel_level",
    "get_kernel_levels",
    "get_library_dir",
    "get_num_threads",
    "set_kernel_level",
    "set_num_threads",
    "__version__",
]
