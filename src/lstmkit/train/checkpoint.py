"""Checkpoints: weights and optimiser tensors in safetensors, everything else in JSON; never pickle.

A run directory holds::

    config.json               the RunConfig, written before the first step
    checkpoint.safetensors    "model.<name>" weights, "optimizer.<param index>.<key>" tensors and,
                              in stateful training, "stream.<i>": the streams' carried state;
                              metadata: format, config, step, the loop state (JSON: sequences,
                              elapsed time, RNG state in base64, the optimiser's param groups and
                              non-tensor state, loop counters) and a SHA-256 over all of it
    metrics.jsonl             one JSON line per log step
    curve.png                 the learning curve
    .lock                     the pid of the training that holds the run (see rundir.py)

A checkpoint is one file, so committing one is one ``os.replace``: a kill at any instant leaves
the previous checkpoint or the new one. Loading checks the format, the checksum and the config,
and names the file in every error.

Example::

    >>> model, config = load_run("runs/adding")            # doctest: +SKIP
    >>> model.lstm.hidden_size == config.model.hidden      # doctest: +SKIP
    True
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from ..fileio import atomic_write
from .config import RESUMABLE_FIELDS, RunConfig
from .model import SequenceModel

CHECKPOINT = "checkpoint.safetensors"
LEGACY_STATE = "state.json"
CONFIG = "config.json"
METRICS = "metrics.jsonl"
FORMAT = "lstmkit-checkpoint/2"
LEGACY_FORMAT = "lstmkit-checkpoint/1"  # weights only; its loop state lived in state.json


# ------------------------------------------------------------------ RNG states
def encode_rng(state: torch.Tensor) -> str:
    """A ``torch`` RNG state (uint8 tensor) as base64 text.

    Example::

        >>> state = torch.get_rng_state()
        >>> torch.equal(decode_rng(encode_rng(state)), state)
        True
    """
    return base64.b64encode(state.numpy().tobytes()).decode("ascii")


def decode_rng(text: str) -> torch.Tensor:
    """Inverse of :func:`encode_rng`: base64 text -> uint8 tensor (see its example)."""
    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8).clone()


# ------------------------------------------------------------------ save
def checksum(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> str:
    """SHA-256 over every tensor (name, dtype, shape, bytes, in name order) and every metadata item
    but ``sha256`` itself: a flipped byte anywhere in the data changes it.

    Example::

        >>> a = checksum({"w": torch.zeros(2)}, {"step": "1"})
        >>> a == checksum({"w": torch.zeros(2)}, {"step": "1"}) != checksum({"w": torch.ones(2)}, {"step": "1"})
        True
    """
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    for key in sorted(k for k in metadata if k != "sha256"):
        h.update(f"{key}={metadata[key]}|".encode())
    return h.hexdigest()


def save_checkpoint(
    run_dir: str | os.PathLike[str],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    config: RunConfig,
    state: dict[str, Any],
    streams: tuple[torch.Tensor, ...] | None = None,
) -> None:
    """Commit weights, optimiser state and loop state to ``checkpoint.safetensors`` in one rename.

    ``streams`` is the state carried by stateful training (tensors (L*D, B, ·)), saved as
    ``stream.0``, ``stream.1``, ...; the streams' positions belong in ``state``.

    ``state`` is JSON-ready loop state and must hold ``step``; the torch RNG state is added.
    Optimiser tensors go into the safetensors file, its param groups, scalars and the loop state
    into its metadata (``state``), with a SHA-256 over everything (:func:`checksum`). A kill at
    any instant leaves the previous checkpoint or this one. ``config.json`` is written (after
    the commit) only when missing; the training loop writes it before the first step.

    Example::

        >>> save_checkpoint("runs/x", model, optimizer, config, {"step": 100})   # doctest: +SKIP
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    step = int(state["step"])
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    for i, t in enumerate(streams or ()):
        tensors[f"stream.{i}"] = t.detach().cpu().contiguous()
    opt_json: dict[str, Any] | None = None
    if optimizer is not None:
        sd = optimizer.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for idx, entry in sd["state"].items():
            for key, value in entry.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"optimizer.{idx}.{key}"] = value.detach().cpu().contiguous()
                else:
                    scalars.setdefault(str(idx), {})[key] = value
        opt_json = {"param_groups": sd["param_groups"], "scalars": scalars, "indices": sorted(sd["state"])}
    full_state = {**state, "optimizer": opt_json, "torch_rng": encode_rng(torch.get_rng_state())}
    metadata = {
        "format": FORMAT,
        "config": json.dumps(config.to_dict(), sort_keys=True),
        "step": str(step),
        "state": json.dumps(full_state, sort_keys=True, allow_nan=False),
    }
    metadata["sha256"] = checksum(tensors, metadata)
    atomic_write(run_dir / CHECKPOINT, save_safetensors(tensors, metadata=metadata))
    if not (run_dir / CONFIG).exists():
        atomic_write(run_dir / CONFIG, config.to_json())


# ------------------------------------------------------------------ load
def checkpoint_path(path: str | os.PathLike[str]) -> Path:
    """The checkpoint file of a run directory (or ``path`` itself when it is a file).

    Example::

        >>> checkpoint_path("runs/adding")         # doctest: +SKIP
        PosixPath('runs/adding/checkpoint.safetensors')
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.is_file():
        raise ValueError(f"no checkpoint at {path} (expected a run directory holding {CHECKPOINT} or the file)")
    return path


def read_config(path: str | os.PathLike[str]) -> RunConfig:
    """The :class:`RunConfig` in a ``config.json``; errors name the file.

    Example::

        >>> read_config("runs/adding/config.json").model.hidden   # doctest: +SKIP
        32
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read run config {path}: {err}") from None
    try:
        return RunConfig.from_dict(data)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a checkpoint file, refusing truncated or foreign files.

    Example::

        >>> tensors, meta = read_checkpoint("runs/adding")   # doctest: +SKIP
        >>> meta["step"], tensors["model.head.weight"].shape   # doctest: +SKIP
        ('1900', torch.Size([1, 32]))
    """
    path = checkpoint_path(path)
    data = path.read_bytes()
    where = f"checkpoint {path} is corrupted or truncated"
    if len(data) < 8:
        raise ValueError(f"{where}: {len(data)} bytes, shorter than the 8-byte header length")
    (header_len,) = struct.unpack("<Q", data[:8])
    if 8 + header_len > len(data):
        if data[:4] == b"PK\x03\x04" or (data[0] == 0x80 and 2 <= data[1] <= 5):  # torch.save's zip, a pickle
            raise ValueError(
                f"{path} is a PyTorch pickle (torch.save), not an lstmkit checkpoint (safetensors); lstmkit never "
                "unpickles: if you trust the file, torch.load it yourself and load_state_dict the weights"
            )
        raise ValueError(f"{where}: header says {header_len} bytes but the file has {len(data) - 8} after it")
    try:
        header = json.loads(data[8 : 8 + header_len])
        metadata = header.get("__metadata__") or {}
        if not isinstance(metadata, dict):
            raise ValueError("metadata is not an object")
    except (ValueError, UnicodeDecodeError, AttributeError) as err:
        raise ValueError(f"{where}: bad header ({err})") from None
    if metadata.get("format") not in (FORMAT, LEGACY_FORMAT):
        found = metadata.get("format")
        raise ValueError(f"{path} is not an lstmkit checkpoint (format {found!r}, expected {FORMAT!r})")
    try:
        tensors = load_safetensors(data)
    except Exception as err:  # safetensors raises its own error type for every decoding failure
        raise ValueError(f"{where}: {err}") from None
    if metadata.get("format") == FORMAT:
        got = checksum(tensors, metadata)
        if got != metadata.get("sha256"):
            raise ValueError(f"{where}: checksum mismatch (stored {metadata.get('sha256')}, data gives {got})")
    return tensors, metadata


def read_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The loop state committed with a checkpoint (``step``, ``sequences``, ``elapsed``, RNG, ...).

    Example::

        >>> read_state("runs/adding")["step"]   # doctest: +SKIP
        1900
    """
    file = checkpoint_path(path)
    _, metadata = read_checkpoint(file)
    return _state_of(file, metadata)


def _state_of(file: Path, metadata: dict[str, str]) -> dict[str, Any]:
    if metadata.get("format") == LEGACY_FORMAT:  # loop state in state.json beside the weights
        state_file = file.parent / LEGACY_STATE
        try:
            state = json.loads(state_file.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"cannot read training state {state_file}: {err}") from None
        if not isinstance(state, dict) or str(state.get("step")) != metadata.get("step"):
            raise ValueError(f"{state_file} does not belong to {file} (step {metadata.get('step')})")
        return state
    try:
        state = json.loads(metadata["state"])
    except (KeyError, json.JSONDecodeError) as err:
        raise ValueError(f"checkpoint {file} has a bad training state: {err}") from None
    if not isinstance(state, dict) or str(state.get("step")) != metadata.get("step"):
        raise ValueError(f"checkpoint {file} has a training state for another step")
    return state


def _config_of(path: Path, metadata: dict[str, str]) -> RunConfig:
    try:
        return RunConfig.from_dict(json.loads(metadata["config"]))
    except (KeyError, ValueError) as err:
        raise ValueError(f"checkpoint {path} has a bad embedded config: {err}") from None


def load_run(path: str | os.PathLike[str]) -> tuple[SequenceModel, RunConfig]:
    """The trained model (in eval mode) and its config, from a run directory or checkpoint file.

    The task comes back with ``make_task(config.task, **config.task_args)``.

    Example::

        >>> model, config = load_run("runs/adding")                     # doctest: +SKIP
        >>> prediction = model(batch.inputs, batch.lengths)             # doctest: +SKIP
    """
    file = checkpoint_path(path)
    tensors, metadata = read_checkpoint(file)
    config = _config_of(file, metadata)
    model = SequenceModel(config.model)
    _load_weights(model, tensors, file)
    model.eval()
    return model, config


def _load_weights(model: torch.nn.Module, tensors: dict[str, torch.Tensor], file: Path) -> None:
    weights = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(weights)), sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise ValueError(f"checkpoint {file} does not fit its model: missing {missing}, unexpected {unexpected}")
    for name, value in weights.items():
        if value.shape != expected[name].shape:
            raise ValueError(
                f"checkpoint {file}: {name} has shape {tuple(value.shape)}, "
                f"the model expects {tuple(expected[name].shape)}"
            )
    model.load_state_dict(weights)


def load_checkpoint(
    run_dir: str | os.PathLike[str],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    config: RunConfig,
) -> dict[str, Any]:
    """Restore ``model`` and ``optimizer`` in place for resuming ``config``; returns the loop state.

    Refuses (ValueError naming the fields) a checkpoint whose config differs from ``config``
    in anything but :data:`~lstmkit.train.config.RESUMABLE_FIELDS`, and one whose checksum does
    not match its data. Restores the torch RNG state. The streams' carried state, when the
    checkpoint holds one, comes back as the tuple ``state["stream_state"]``.

    Example::

        >>> state = load_checkpoint("runs/x", model, optimizer, config)   # doctest: +SKIP
        >>> state["step"]                                                  # doctest: +SKIP
        100
    """
    file = checkpoint_path(run_dir)
    tensors, metadata = read_checkpoint(file)
    saved = _config_of(file, metadata)
    diffs = [d for d in saved.differences(config) if d[0] not in RESUMABLE_FIELDS]
    if diffs:
        listed = "; ".join(f"{k}: checkpoint has {a!r}, this run asks for {b!r}" for k, a, b in diffs)
        raise ValueError(f"checkpoint {file} was trained with a different config ({listed})")
    state = _state_of(file, metadata)
    _load_weights(model, tensors, file)
    if optimizer is not None:
        opt = state.get("optimizer")
        if not isinstance(opt, dict):
            raise ValueError(f"checkpoint {file} holds no optimizer state")
        entries: dict[int, dict[str, Any]] = {}
        for idx in opt["indices"]:
            entry = {k.split(".", 2)[2]: v for k, v in tensors.items() if k.startswith(f"optimizer.{idx}.")}
            entry.update(opt["scalars"].get(str(idx), {}))
            entries[int(idx)] = entry
        groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in opt["param_groups"]]
        try:
            optimizer.load_state_dict({"state": entries, "param_groups": groups})
        except (ValueError, KeyError) as err:
            raise ValueError(f"optimizer state in {file} does not fit: {err}") from None
    if "torch_rng" in state:
        torch.set_rng_state(decode_rng(state["torch_rng"]))
    count = sum(1 for k in tensors if k.startswith("stream."))
    if count:
        try:
            state["stream_state"] = tuple(tensors[f"stream.{i}"] for i in range(count))
        except KeyError as err:
            raise ValueError(f"checkpoint {file} has stream state tensors out of order: no {err}") from None
    return state
