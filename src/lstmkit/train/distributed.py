"""Multi-process data parallel training: the same loop under ``torchrun --nproc_per_node N``.

Each process (rank) draws the same global batch from the step's generator and keeps its own
shard ``[rank * B/N, (rank + 1) * B/N)``; DistributedDataParallel averages the gradients, so N
processes with batch B/N each take the same steps as one process with batch B (for losses that
are means over equal shards). Only rank 0 writes files. The backend is gloo on CPU, nccl on GPU.

Example (shell)::

    torchrun --standalone --nproc_per_node 2 -m lstmkit train adding --batch-size 64
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``rank`` in ``[0, world_size)``; ``world_size`` 1 when alone."""

    rank: int = 0  # this process's index
    world_size: int = 1  # number of processes
    started_here: bool = False  # True when init_from_env created the process group

    @property
    def is_main(self) -> bool:
        """True on the process that writes files (rank 0)."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """True when more than one process trains."""
        return self.world_size > 1


def init_from_env() -> DistInfo:
    """Join the process group that ``torchrun`` describes in the environment (or one already
    initialised); a single process (no ``WORLD_SIZE`` or ``WORLD_SIZE=1``) gets ``DistInfo()``.

    Example::

        >>> init_from_env().world_size   # doctest: +SKIP
        1
    """
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), False)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but torch.distributed is not available in this build")
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend=backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), True)


def wrap(model: nn.Module, info: DistInfo) -> nn.Module:
    """``DistributedDataParallel(model)`` when several processes train, else ``model``.

    Example::

        >>> wrap(model, DistInfo()) is model   # doctest: +SKIP
        True
    """
    if not info.active:
        return model
    return nn.parallel.DistributedDataParallel(model)


def mean_over_ranks(value: float, info: DistInfo) -> float:
    """The mean of a float over all processes (the value itself when alone).

    Example::

        >>> mean_over_ranks(0.5, DistInfo())
        0.5
    """
    if not info.active:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t.item()) / info.world_size


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True when ``flag`` is True on at least one process (so all stop at the same step).

    Example::

        >>> any_rank(True, DistInfo())
        True
    """
    if not info.active:
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int64)
    dist.all_reduce(t)
    return bool(t.item() > 0)


def shutdown(info: DistInfo, clean: bool = True) -> None:
    """Leave the process group if :func:`init_from_env` created it.

    A ``DistributedDataParallel`` wrapper lives in reference cycles, so dropping the last name
    does not free it: its C++ reducer (holding the gloo process group, its buckets and work
    futures) would stay alive until a later garbage collection, possibly during interpreter
    shutdown, where a gloo thread that needs the GIL is ended inside a ``noexcept`` frame and
    the process aborts ("terminate called without an active exception"). So the caller drops
    its wrapper first; here the cycles are collected while the interpreter is whole, and after a
    clean run (``clean``) all ranks meet at a barrier, so none tears its connections down while
    another still talks, before the group is destroyed.
    """
    if not (info.started_here and dist.is_initialized()):
        return
    gc.collect()
    if clean:
        dist.barrier()
    dist.destroy_process_group()
