"""Small helpers shared by the task generators (private)."""

from __future__ import annotations

import torch
from torch import Tensor


def fixed_generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (test sets use their own, never the training one)."""
    gen = torch.Generator()
    gen.manual_seed(int(seed))
    return gen


def check_generator(generator: object) -> torch.Generator:
    """Fail early with a clear message when ``sample`` gets something that is not a generator."""
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator; got {type(generator).__name__}")
    return generator


def check_int(name: str, value: object, minimum: int) -> int:
    """``value`` as an int, or a ValueError/TypeError naming ``name``, the bound and the value."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int; got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}")
    return value


def check_batch_size(batch_size: object) -> int:
    """Positive batch size or a clear error."""
    return check_int("batch_size", batch_size, 1)


def uniform_int(low: Tensor | int, high: Tensor | int, size: int, generator: torch.Generator) -> Tensor:
    """(size,) int64 draws, each uniform on the integers ``low <= k <= high`` (bounds per row allowed)."""
    low_t = torch.as_tensor(low, dtype=torch.int64)
    high_t = torch.as_tensor(high, dtype=torch.int64)
    span = (high_t - low_t + 1).to(torch.float64)  # number of choices per row
    u = torch.rand(size, generator=generator, dtype=torch.float64)
    k = (u * span).floor().to(torch.int64)
    return low_t + torch.minimum(k, (span - 1).to(torch.int64))  # guard the u -> 1 edge


def check_prediction(prediction: Tensor, shape: tuple[int, ...], task: str) -> None:
    """A ValueError naming expected and actual shapes when the model output does not fit the batch."""
    if not isinstance(prediction, Tensor):
        raise TypeError(f"{task}: prediction must be a Tensor; got {type(prediction).__name__}")
    if tuple(prediction.shape) != tuple(shape):
        raise ValueError(f"{task}: prediction must have shape {tuple(shape)}; got {tuple(prediction.shape)}")
