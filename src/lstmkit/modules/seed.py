"""The founding document's cell: four ``nn.Linear`` on ``[x_t, h_{t-1}]``, and its conversion.

The founding document writes each gate as its own ``nn.Linear(I + H, H)`` applied to the
concatenation ``cat((x, h_prev), 1)``. Splitting each weight into its first I columns (input)
and last H columns (hidden) gives the rows of ``weight_ih`` and ``weight_hh``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

# attribute name of each gate in storage order i, f, g, o
SEED_NAMES = ("input_gate", "forget_gate", "cell_candidate", "output_gate")


class SeedLSTMCell(nn.Module):
    """An LSTM cell written the founding document's way (one ``nn.Linear`` per gate).

    forward(x (B, I), (h_prev, c_prev) each (B, H)) -> (h_t, c_t).
    """

    def __init__(self, input_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim
        self.forget_gate = nn.Linear(input_dim + hidden_dim, hidden_dim)
        self.input_gate = nn.Linear(input_dim + hidden_dim, hidden_dim)
        self.cell_candidate = nn.Linear(input_dim + hidden_dim, hidden_dim)
        self.output_gate = nn.Linear(input_dim + hidden_dim, hidden_dim)

    def forward(self, x: Tensor, hidden: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        h_prev, c_prev = hidden
        combined = torch.cat((x, h_prev), 1)
        f_t = torch.sigmoid(self.forget_gate(combined))
        i_t = torch.sigmoid(self.input_gate(combined))
        c_hat_t = torch.tanh(self.cell_candidate(combined))
        c_t = f_t * c_prev + i_t * c_hat_t
        o_t = torch.sigmoid(self.output_gate(combined))
        h_t = o_t * torch.tanh(c_t)
        return h_t, c_t

    @classmethod
    def from_state_dict(cls, state: dict[str, Tensor], input_size: int, hidden_size: int) -> SeedLSTMCell:
        """Build from an ``LSTMCell`` state dict (gate rows i, f, g, o)."""
        w = state["weight_ih"]
        cell = cls(input_size, hidden_size).to(device=w.device, dtype=w.dtype)
        H = hidden_size
        bias = state.get("bias_ih")
        if bias is not None:
            bias = bias + state["bias_hh"]
        with torch.no_grad():
            for k, name in enumerate(SEED_NAMES):
                rows = slice(k * H, (k + 1) * H)
                linear: nn.Linear = getattr(cell, name)
                linear.weight.copy_(torch.cat((state["weight_ih"][rows], state["weight_hh"][rows]), 1))
                linear.bias.copy_(bias[rows] if bias is not None else torch.zeros(H))
        return cell


def seed_to_state_dict(module: nn.Module) -> tuple[dict[str, Tensor], int, int]:
    """``LSTMCell`` state dict, input size and hidden size of a founding-document cell.

    Each Linear's bias goes to ``bias_ih``; ``bias_hh`` is zero.
    """
    linears = []
    for name in SEED_NAMES:
        layer = getattr(module, name, None)
        if not isinstance(layer, nn.Linear):
            raise TypeError(
                f"from_seed expects a module with nn.Linear attributes {SEED_NAMES}; {name!r} is {type(layer).__name__}"
            )
        linears.append(layer)
    H = linears[0].out_features
    for name, layer in zip(SEED_NAMES, linears, strict=True):
        if layer.out_features != H or layer.in_features != linears[0].in_features:
            raise ValueError(
                f"all four gates must be nn.Linear({linears[0].in_features}, {H}); "
                f"{name} is nn.Linear({layer.in_features}, {layer.out_features})"
            )
        if layer.bias is None:
            raise ValueError(f"from_seed expects gates with a bias; {name} has bias=False")
    I = linears[0].in_features - H
    if I <= 0:
        raise ValueError(
            f"gate Linear in_features ({linears[0].in_features}) must be input_dim + hidden_dim "
            f"with input_dim > 0 and hidden_dim = out_features = {H}"
        )
    weights = torch.cat([layer.weight.detach() for layer in linears], 0)  # (4H, I + H)
    bias = torch.cat([layer.bias.detach() for layer in linears], 0)
    state = {
        "weight_ih": weights[:, :I].clone(),
        "weight_hh": weights[:, I:].clone(),
        "bias_ih": bias.clone(),
        "bias_hh": torch.zeros_like(bias),
    }
    return state, I, H
