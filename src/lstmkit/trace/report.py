"""One call from a model and some inputs to a folder of pictures and a ``summary.json``.

:func:`inspect_model` records every gate of an :class:`lstmkit.LSTM` (or an :class:`lstmkit.SLSTM`,
:class:`lstmkit.MLSTM`, :class:`lstmkit.MinLSTM`: their records, pictures and summary are those of
:mod:`lstmkit.trace.family`) on a batch and writes, for each layer k and direction (``_reverse``
for the backward one):

    gates_l{k}.png     heatmaps of the gates and cell state of one sequence (trace.plots.plot_gates)
    horizon_l{k}.png   forget-gate memory horizon histogram (trace.plots.plot_memory_horizon)
    means_l{k}.png     gate means over the batch at every step (trace.plots.plot_gate_means)
    summary.json       trace.summary() as JSON, plus what was shown

``lstmkit inspect`` is a thin command-line wrapper around it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.nn.utils.rnn import pack_padded_sequence

from ..modules import LSTM
from ..modules.family_base import FamilyRNN

Recordable = LSTM | FamilyRNN


def _check_inputs(lstm: Recordable, inputs: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor | None]:
    if not isinstance(inputs, Tensor) or not inputs.is_floating_point():
        got = inputs.dtype if isinstance(inputs, Tensor) else type(inputs).__name__
        raise TypeError(f"inputs must be a floating-point tensor; got {got}")
    if inputs.dim() == 2:
        inputs = inputs.unsqueeze(0)
    if inputs.dim() != 3 or inputs.shape[2] != lstm.input_size:
        raise ValueError(
            f"inputs must be (B, T, {lstm.input_size}) or (T, {lstm.input_size}); got {tuple(inputs.shape)}"
        )
    B, T = inputs.shape[0], inputs.shape[1]
    if B == 0 or T == 0:
        raise ValueError(f"inputs must hold at least one step of one sequence; got {tuple(inputs.shape)}")
    if lengths is not None:
        lengths = torch.as_tensor(lengths).to("cpu", torch.int64)
        if lengths.shape != (B,):
            raise ValueError(f"lengths must be ({B},) for {B} sequence(s); got shape {tuple(lengths.shape)}")
        if bool(((lengths < 1) | (lengths > T)).any()):
            raise ValueError(f"lengths must be in [1, {T}]; got {lengths.tolist()}")
        if bool((lengths == T).all()):
            lengths = None
    return inputs, lengths


def record_gates(lstm: Recordable, inputs: Tensor, lengths: Tensor | None = None) -> Any:
    """The :class:`~lstmkit.trace.GateTrace` of ``lstm`` in evaluation mode on a batch (the
    :class:`~lstmkit.families.FamilyTrace` of an sLSTM, mLSTM or minLSTM module).

    ``inputs`` (B, T, I) batch-major (whatever ``lstm.batch_first``) or (T, I) for one
    sequence; ``lengths`` (B,) valid lengths in [1, T] or None (all T). Runs without gradients
    and puts ``lstm`` back in its previous mode. The trace is batch-major: (B, T, H).

    Example::

        >>> trace = record_gates(lstm, torch.randn(4, 12, lstm.input_size), torch.tensor([12, 5, 9, 1]))
        >>> trace.get("forget", layer=0).shape[:2]
        torch.Size([4, 12])
    """
    if not isinstance(lstm, (LSTM, FamilyRNN)):
        raise TypeError(f"gates are recorded from an lstmkit.LSTM, SLSTM, MLSTM or MinLSTM; got {type(lstm).__name__}")
    inputs, lengths = _check_inputs(lstm, inputs, lengths)
    p: Tensor = lstm.weight_ih_l0
    x = inputs.to(p.device, p.dtype)
    was_training = lstm.training
    lstm.eval()
    try:
        with torch.no_grad():
            if isinstance(lstm, FamilyRNN):  # padded input with lengths; the trace is batch-major already
                layout = x if lstm.batch_first else x.transpose(0, 1)
                return lstm(layout, return_gates=True, lengths=lengths)[2]
            if lengths is not None:
                seq: Any = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            else:
                seq = x if lstm.batch_first else x.transpose(0, 1)
            _, _, trace = lstm(seq, return_gates=True)
    finally:
        lstm.train(was_training)
    if not trace.batch_first:  # give every caller the same (B, T, H) layout
        trace.layers = [[{k: v.transpose(0, 1) for k, v in d.items()} for d in layer] for layer in trace.layers]
        trace.batch_first = True
    return trace


def inspect_model(
    lstm: Recordable,
    inputs: Tensor,
    lengths: Tensor | None,
    out_dir: str | Path,
    *,
    sequence: int = 0,
    start: int = 0,
    dpi: int = 100,
    meta: dict[str, object] | None = None,
    events: list[list[int]] | None = None,
) -> dict[str, Path]:
    """Record the gates of ``lstm`` on ``inputs`` and write pictures and ``summary.json``.

    ``inputs`` (B, T, I) batch-major or (T, I); ``lengths`` (B,) or None; ``sequence`` the batch
    index shown in the heatmaps; ``start`` the memory-horizon start step; ``meta`` extra
    JSON-ready facts stored under ``"inputs"`` in the summary; ``events`` the task's marked steps of
    each sequence (drawn over the heatmaps beside the inputs). Returns ``{name: path}``
    for every file written (names like ``"gates_l0"``, ``"horizon_l1_reverse"``, ``"summary"``).

    Example::

        >>> paths = inspect_model(lstm, torch.randn(8, 20, lstm.input_size), None, "out")
        >>> sorted(paths)
        ['gates_l0', 'horizon_l0', 'means_l0', 'summary']
    """
    from . import plots  # matplotlib only now
    from .summary import summarize, valid_mask

    trace = record_gates(lstm, inputs, lengths)
    B = valid_mask(trace).shape[0]
    if isinstance(sequence, bool) or not isinstance(sequence, int) or not 0 <= sequence < B:
        raise ValueError(f"sequence must be an int in [0, {B}); got {sequence!r}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"the output folder {out} is an existing file; give a folder (it is created if missing)")
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(trace, start=start)
    paths: dict[str, Path] = {}
    for k in range(trace.num_layers):
        for d in range(getattr(trace, "num_directions", 1)):
            tag = f"l{k}" + ("_reverse" if d == 1 else "")
            files = {name: out / f"{name}_{tag}.png" for name in ("gates", "horizon", "means")}
            plots.plot_gates(
                trace,
                sequence,
                layer=k,
                direction=d,
                inputs=inputs if inputs.dim() == 3 else inputs[None],
                events=events[sequence] if events else (),
                path=files["gates"],
                dpi=dpi,
            )
            plots.plot_memory_horizon(trace, summary=summary, layer=k, direction=d, path=files["horizon"], dpi=dpi)
            plots.plot_gate_means(trace, layer=k, direction=d, path=files["means"], dpi=dpi)
            paths.update({f"{name}_{tag}": path for name, path in files.items()})
    data = summary.to_dict()
    shown: dict[str, object] = {"shown_sequence": sequence, **(meta or {})}
    if events:
        shown["shown_events"] = list(events[sequence])
    data["inputs"] = shown
    summary_path = out / "summary.json"
    summary_path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
    paths["summary"] = summary_path
    return paths
