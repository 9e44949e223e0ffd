"""``torch.nn.LSTM`` / ``nn.LSTMCell`` in and out of lstmkit.

The parameter layout is torch's (names, shapes, gate rows i, f, g, o), so a conversion copies the
``state_dict``. Only a model that computes exactly what torch's module computes converts to it:
the default spec, no zoneout (it acts in evaluation too, as its expectation), and in training
mode no recurrent dropout or weight drop (in evaluation mode they are the identity); anything else
is refused with the reason, never dropped silently.

Example::

    >>> ours = lstm_from_torch(torch.nn.LSTM(10, 20, num_layers=2))
    >>> back = lstm_to_torch(ours)                  # a torch.nn.LSTM with the same weights
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..modules.cell import LSTMCell
from ..modules.lstm import LSTM


def torch_incompatibilities(model: LSTM | LSTMCell) -> list[str]:
    """What ``model`` computes that torch's module cannot (empty when it converts exactly)."""
    reasons = []
    if not model.spec.is_plain:
        reasons.append(f"spec {model.spec} (only the default spec is torch's cell)")
    if model.zoneout != (0.0, 0.0):
        reasons.append(f"zoneout={model.zoneout} (acts in evaluation too, as its expectation)")
    if model.training:  # in evaluation these two are the identity, and the converted module keeps the mode
        for name in ("recurrent_dropout", "weight_drop"):
            if getattr(model, name, 0.0):
                reasons.append(f"{name}={getattr(model, name)} in training mode (call .eval() to convert)")
    return reasons


def _refuse(model: LSTM | LSTMCell, target: str) -> None:
    reasons = torch_incompatibilities(model)
    if reasons:
        raise ValueError(
            f"cannot convert to {target} without changing what the model computes: it has {'; '.join(reasons)}"
        )


def lstm_from_torch(module: nn.LSTM, *, cls: type[LSTM] = LSTM, **kwargs: Any) -> LSTM:
    """An :class:`~lstmkit.LSTM` with the configuration, weights, dtype, device and mode of a
    ``torch.nn.LSTM``; ``kwargs`` go to the constructor (e.g. ``spec``-free extras such as ``generator``)."""
    if not isinstance(module, nn.LSTM):
        raise TypeError(f"from_torch expects a torch.nn.LSTM; got {type(module).__name__}")
    p = module.weight_ih_l0
    model = cls(
        module.input_size,
        module.hidden_size,
        module.num_layers,
        module.bias,
        module.batch_first,
        float(module.dropout),
        module.bidirectional,
        module.proj_size,
        device=p.device,
        dtype=p.dtype,
        **kwargs,
    )
    model.load_state_dict(module.state_dict())
    model.train(module.training)
    return model


def lstm_to_torch(model: LSTM) -> nn.LSTM:
    """The same model (and mode) as a ``torch.nn.LSTM``; refuses (ValueError, naming why) a model
    torch's module cannot compute: another spec, zoneout, or in training mode recurrent dropout or
    weight drop."""
    if not isinstance(model, LSTM):
        raise TypeError(f"lstm_to_torch expects a lstmkit.LSTM; got {type(model).__name__}")
    _refuse(model, "torch.nn.LSTM")
    p = model.weight_ih_l0
    out = nn.LSTM(
        model.input_size,
        model.hidden_size,
        model.num_layers,
        model.bias,
        model.batch_first,
        model.dropout,
        model.bidirectional,
        model.proj_size,
        device=p.device,
        dtype=p.dtype,
    )
    out.load_state_dict(model.state_dict())
    out.train(model.training)
    return out


def cell_from_torch(module: nn.LSTMCell, *, cls: type[LSTMCell] = LSTMCell) -> LSTMCell:
    """A :class:`~lstmkit.LSTMCell` with the weights (dtype, device) of a ``torch.nn.LSTMCell``."""
    if not isinstance(module, nn.LSTMCell):
        raise TypeError(f"from_torch expects a torch.nn.LSTMCell; got {type(module).__name__}")
    p = module.weight_ih
    cell = cls(module.input_size, module.hidden_size, module.bias, device=p.device, dtype=p.dtype)
    cell.load_state_dict(module.state_dict())
    cell.train(module.training)
    return cell


def cell_to_torch(cell: LSTMCell) -> nn.LSTMCell:
    """The same cell as a ``torch.nn.LSTMCell``; refuses another spec or zoneout, naming why."""
    if not isinstance(cell, LSTMCell):
        raise TypeError(f"cell_to_torch expects a lstmkit.LSTMCell; got {type(cell).__name__}")
    _refuse(cell, "torch.nn.LSTMCell")
    p = cell.weight_ih
    out = nn.LSTMCell(cell.input_size, cell.hidden_size, cell.bias, device=p.device, dtype=p.dtype)
    out.load_state_dict(cell.state_dict())
    out.train(cell.training)
    return out
