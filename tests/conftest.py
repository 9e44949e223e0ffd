"""Shared fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def compiled_kernel() -> object:
    """The compiled C++ extension, built on first use (CI has a compiler and ninja: it must build)."""
    from lstmkit.kernels import compiled

    assert compiled.is_available(), compiled._state["error"]
    return compiled.extension()
