# SPDX-License-Identifier: MIT
"""pytest configuration: the test modules import `reference` and `helpers` from this folder.

deltaprop is imported by the test modules themselves (the installed package, never the source tree),
so tests/test_reference.py still runs where the package is not built.
"""
from __future__ import annotations

import os

# scikit-learn's conformance checks include array-API ones that are skipped unless scipy sees this
# before its first import (tests/test_sklearn.py)
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def restore_threads():
    """Put the thread count back after a test that changes it."""
    import deltaprop as dp

    n = dp.get_num_threads()
    yield dp
    dp.set_num_threads(n)
