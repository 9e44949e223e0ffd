"""Shared fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def compiled_kernel() -> object:
    """The compiled C++ extension, built on first use (CI has a compiler and ninja: it must build)."""
    from lstmkit.kernels import compiled

    assert compiled.is_available(), compiled._state["error"]
    return compiled.extension()


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One thread for a test (tiny models run fastest on one, and the machine may be shared), the
    count restored afterwards. Modules use it for every test:
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def triton_interpreter() -> Iterator[None]:
    """Triton's interpreter for a module's tests when there is no GPU (set before the kernels are
    first imported, which happens lazily inside the tests), undone afterwards. Modules that run
    Triton kernels use it for every test: ``pytestmark = pytest.mark.usefixtures("triton_interpreter")``."""
    import torch

    patch = pytest.MonkeyPatch()
    if not torch.cuda.is_available():
        patch.setenv("TRITON_INTERPRET", "1")
    yield
    patch.undo()
