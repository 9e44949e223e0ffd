"""Using a trained model step by step: text sampling for token tasks (forecasts: :mod:`.forecasting`)."""

from __future__ import annotations

import torch
from torch import Tensor

from .model import SequenceModel


def sample_tokens(
    model: SequenceModel,
    prime: Tensor,
    length: int,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    banned: tuple[int, ...] = (),
) -> Tensor:
    r"""Continue a token sequence by sampling ``length`` new ids from the model.

    The prime (N,) int64 runs through the model once; then, one step at a time,

    .. math::
        p(x_{t+1} \mid x_{\le t}) = \mathrm{softmax}(z_t / \tau), \qquad x_{t+1} \sim p

    with the recurrent state carried between steps (temperature :math:`\tau`; ``0`` picks the
    most likely id); ids in ``banned`` (e.g. an "unknown" id) are never drawn. Needs a token
    model with ``readout="all"``. Returns (length,) int64.

    Example::

        >>> ids = sample_tokens(model, task.encode("The "), 50, temperature=0.8)   # doctest: +SKIP
        >>> task.decode(ids)                                                       # doctest: +SKIP
    """
    c = model.config
    if c.vocab_size is None or c.readout != "all" or c.bidirectional:
        raise ValueError(
            "sampling needs a unidirectional token model with readout 'all' "
            f"(this one: vocab_size={c.vocab_size}, readout={c.readout!r}, "
            f"bidirectional={c.bidirectional})"
        )
    if prime.dim() != 1 or prime.numel() == 0:
        raise ValueError(f"prime must be a non-empty (N,) tensor of ids; got shape {tuple(prime.shape)}")
    if length < 0 or temperature < 0:
        raise ValueError(f"length and temperature must be >= 0; got {length} and {temperature}")
    assert model.embedding is not None
    model.eval()
    out: list[int] = []
    ban = torch.tensor(sorted(banned), dtype=torch.int64)
    with torch.no_grad():
        hidden, state = model.lstm(model.embedding(prime.view(1, -1)))  # (1, N, R)
        logits = model.head(hidden[:, -1])  # (1, V)
        for _ in range(length):
            logits = logits.index_fill(1, ban, float("-inf")) if len(ban) else logits
            if temperature == 0:
                nxt = int(logits.argmax(dim=-1))
            else:
                probs = torch.softmax(logits / temperature, dim=-1)
                nxt = int(torch.multinomial(probs, 1, generator=generator))
            out.append(nxt)
            hidden, state = model.lstm(model.embedding(torch.tensor([[nxt]])), state)
            logits = model.head(hidden[:, -1])
    return torch.tensor(out, dtype=torch.int64)
