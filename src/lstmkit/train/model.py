"""The model every task trains: optional embedding -> recurrent core -> linear head.

:class:`SequenceModel` reads out either the hidden output at each sequence's last valid step
(``readout="last"``, (B, O)) or at every step (``readout="all"``, (B, T, O)).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..init import apply_init
from ..modules import LSTM, MLSTM, SLSTM, MinLSTM
from .config import ModelConfig


def family_core(config: ModelConfig, input_size: int) -> nn.Module:
    """The batch-first sLSTM, mLSTM or minLSTM stack that ``config.cell`` names (``config.heads`` heads
    where the family has them), computed in ``config.form`` or the module's default form."""
    c = config
    dropout = c.dropout if c.layers > 1 else 0.0
    if c.cell == "slstm":
        return SLSTM(input_size, c.hidden, c.layers, batch_first=True, dropout=dropout, num_heads=c.heads, init=c.init)
    if c.cell == "mlstm":
        return MLSTM(
            input_size,
            c.hidden,
            c.layers,
            batch_first=True,
            dropout=dropout,
            num_heads=c.heads,
            init=c.init,
            form=c.form or "chunkwise",
        )
    if c.cell == "minlstm":
        return MinLSTM(input_size, c.hidden, c.layers, batch_first=True, dropout=dropout, form=c.form or "scan")
    raise ValueError(f"family_core builds slstm, mlstm or minlstm cores; got cell {c.cell!r}")


class SequenceModel(nn.Module):
    r"""Embedding (token tasks only), a batch-first recurrent core ``.lstm`` and a head ``.head``.

    .. math::
        e_t = \mathrm{Embed}(x_t)\ (\text{token inputs}) \qquad
        (y_1 \dots y_T) = \mathrm{LSTM}(e_1 \dots e_T) \qquad
        \hat{z} = W y_{\ell} + b\ (\text{"last"}) \quad \text{or} \quad \hat{z}_t = W y_t + b\ (\text{"all"})

    where :math:`\ell` is each sequence's last valid step. ``.lstm`` is an :class:`lstmkit.LSTM`
    (``batch_first=True``), or ``torch.nn.RNN``/``torch.nn.GRU`` when ``config.baseline`` says so.
    ``config.cell`` swaps the LSTM for an :class:`lstmkit.SLSTM`, :class:`lstmkit.MLSTM` or
    :class:`lstmkit.MinLSTM` stack (same readouts; its state tuple is the family's own), and
    ``config.token_shift`` feeds the core ``[e_t, e_{t-1}]`` (e_0 = 0), the width-2 causal
    convolution xLSTM's blocks put before the cell, so one step sees a token and its predecessor.
    ``config.init`` picks the gate-bias initialisation (:mod:`lstmkit.init`): chrono for the LSTM
    (b_f ~ log U[1, T_max - 1], b_i = -b_f) and for the GRU's update gate; IRNN (ReLU units,
    identity recurrent weights, zero biases; Le, Jaitly & Hinton 2015) for the RNN.
    Bidirectional cores run on packed sequences, so the reverse direction starts at each
    sequence's own last step; unidirectional ones index the output by ``lengths``.

    Shapes: inputs (B, T, I) float or (B, T) int64 tokens; lengths (B,) int64 in [1, T];
    returns (B, O) for "last", (B, T, O) for "all" (zeros past each length for packed cores).

    Example::

        >>> model = SequenceModel(ModelConfig(input_size=2, output_size=1, hidden=16))
        >>> model(torch.randn(4, 10, 2), torch.tensor([10, 9, 8, 7])).shape
        torch.Size([4, 1])
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.embedding = nn.Embedding(c.vocab_size, c.embedding_dim) if c.vocab_size is not None else None
        core_input = c.embedding_dim if c.vocab_size is not None else c.input_size
        # integer codes in the last K input columns (series id, static columns): one embedding each
        self.categories = nn.ModuleList(nn.Embedding(n, c.category_dim) for n in c.categories)
        core_input += len(c.categories) * (c.category_dim - 1)
        core_input *= 2 if c.token_shift else 1  # [e_t, e_{t-1}]
        self.lstm: nn.Module
        if c.cell != "lstm":
            self.lstm = family_core(c, core_input)
        elif c.baseline == "lstm":
            self.lstm = LSTM(
                core_input,
                c.hidden,
                c.layers,
                batch_first=True,
                dropout=c.dropout if c.layers > 1 else 0.0,
                bidirectional=c.bidirectional,
                proj_size=c.proj_size,
                spec=c.cell_spec(),
                forget_bias=c.forget_bias,
                init=c.init,
                t_max=c.t_max,
                recurrent_dropout=c.recurrent_dropout,
                zoneout=c.zoneout,
                weight_drop=c.weight_drop,
            )
        else:
            core = nn.RNN if c.baseline == "rnn" else nn.GRU
            kw = {"nonlinearity": "relu"} if c.init == "irnn" else {}  # IRNN: ReLU units (Le et al. 2015)
            self.lstm = core(
                core_input,
                c.hidden,
                c.layers,
                batch_first=True,
                dropout=c.dropout if c.layers > 1 else 0.0,
                bidirectional=c.bidirectional,
                **kw,
            )
            apply_init(self.lstm, c.init, c.t_max)  # the baseline's own best-known init (lstmkit.init)
        D = 2 if c.bidirectional else 1
        R = c.proj_size if (c.baseline == "lstm" and c.proj_size > 0) else c.hidden
        self.head = nn.Linear(D * R, c.output_size)

    def forward(self, inputs: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Prediction per the readout; see the class docstring for shapes. ``lengths`` None means
        every sequence has all T steps."""
        c = self.config
        x = self._embed(inputs)  # (B, T, E or I)
        B, T = x.shape[0], x.shape[1]
        if lengths is None:
            lengths = torch.full((B,), T, dtype=torch.int64, device=x.device)
        if lengths.shape != (B,):
            raise ValueError(f"lengths must be ({B},); got {tuple(lengths.shape)}")
        lengths = lengths.to(torch.int64)
        full = bool((lengths == T).all())
        if c.bidirectional and not full:
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out_packed, state = self.lstm(packed)
            if c.readout == "last":
                h_n = state[0] if isinstance(state, tuple) else state  # (L*D, B, R)
                last = h_n[-2:].permute(1, 0, 2).reshape(B, -1)  # (B, D*R)
                return self.head(last)
            out, _ = pad_packed_sequence(out_packed, batch_first=True, total_length=T)  # (B, T, D*R)
            return self.head(out)
        out, state = self.lstm(x)  # (B, T, D*R)
        if c.readout == "all":
            return self.head(out)
        if c.bidirectional:  # full length: forward at T-1, reverse at 0, i.e. the last layer's h_n
            h_n = state[0] if isinstance(state, tuple) else state
            return self.head(h_n[-2:].permute(1, 0, 2).reshape(B, -1))
        if full:
            return self.head(out[:, -1])
        index = (lengths - 1).clamp(min=0).view(B, 1, 1).expand(B, 1, out.shape[2])
        return self.head(out.gather(1, index).squeeze(1))  # (B, R) at each last valid step

    def forward_state(
        self, inputs: Tensor, state: tuple[Tensor, ...] | None = None
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        r"""The head at every step and the core's state after the last one, for streaming.

        .. math::
            (y_1 \dots y_T),\ s_T = \mathrm{core}(e_1 \dots e_T;\ s_0) \qquad \hat{z}_t = W y_t + b

        ``state`` is None (zeros) or the tuple an earlier call returned, so that calling this on
        consecutive chunks of a sequence, carrying the state, gives exactly what one call on the
        whole sequence gives. The head is applied at every step whatever ``config.readout`` says:
        for a "last" readout, step t of the result is what :meth:`forward` predicts for the
        sequence cut after step t. The state is the core's own: ``(h_n, c_n)`` for the LSTM (plus
        the extra elements some specs carry), the family's tuple for a family cell, ``(h_n,)`` for
        ``torch.nn.GRU``/``RNN``; under ``token_shift`` one more tensor (1, B, F) follows, the
        features of the last step read. Every tensor in it has the batch on dim 1.
        Bidirectional models cannot stream (ValueError).

        Shapes: inputs (B, T, I) float or (B, T) int64 tokens; returns (B, T, O) and a tuple of
        tensors shaped (L, B, ·).

        Example::

            >>> model = SequenceModel(ModelConfig(input_size=2, output_size=1, hidden=16))
            >>> x = torch.randn(4, 10, 2)
            >>> y1, s = model.forward_state(x[:, :6])
            >>> y2, s = model.forward_state(x[:, 6:], s)
            >>> torch.allclose(torch.cat([y1, y2], 1)[:, -1], model(x), atol=1e-6)
            True
        """
        c = self.config
        if c.bidirectional:
            raise ValueError(
                "a bidirectional model cannot stream (the reverse direction needs the whole sequence); "
                "expected bidirectional=False, got True"
            )
        previous: Tensor | None = None
        if c.token_shift and state is not None:
            *core_state, previous = state
            state = tuple(core_state)
            previous = previous.transpose(0, 1)  # (B, 1, F)
        x = self._embed(inputs, previous)  # (B, T, E or I), or twice that under token_shift
        tail = (self._features(inputs)[:, -1:].transpose(0, 1),) if c.token_shift else ()  # (1, B, F)
        if c.baseline == "lstm":
            out, new_state = self.lstm(x, None if state is None else tuple(state))
            return self.head(out), (*new_state, *tail)
        if state is not None and len(state) != 1:
            raise ValueError(
                f"a torch.nn.{c.baseline.upper()} core's state is a 1-tuple (h,); got {len(state)} tensors"
            )
        out, h_n = self.lstm(x, None if state is None else state[0])
        return self.head(out), (h_n, *tail)

    def _embed(self, inputs: Tensor, previous: Tensor | None = None) -> Tensor:
        """The core's input, with the previous step's features beside each step's under ``token_shift``
        (``previous`` (B, 1, F): the features of the step before ``inputs``, zeros when None)."""
        x = self._features(inputs)  # (B, T, F)
        if not self.config.token_shift:
            return x
        before = x.new_zeros(x.shape[0], 1, x.shape[2]) if previous is None else previous
        return torch.cat([x, torch.cat([before, x[:, :-1]], dim=1)], dim=-1)  # (B, T, 2F)

    def _features(self, inputs: Tensor) -> Tensor:
        """Embedded tokens (B, T) int64 -> (B, T, E), or checked floats (B, T, I)."""
        c = self.config
        if c.vocab_size is not None:
            if inputs.dim() != 2 or inputs.dtype != torch.int64:
                raise ValueError(f"token inputs must be (B, T) int64; got {tuple(inputs.shape)} {inputs.dtype}")
            assert self.embedding is not None  # built whenever vocab_size is set
            return self.embedding(inputs)  # (B, T, E)
        if inputs.dim() != 3 or inputs.shape[-1] != c.input_size:
            raise ValueError(f"inputs must be (B, T, {c.input_size}); got {tuple(inputs.shape)}")
        if not c.categories:
            return inputs
        K = len(c.categories)
        codes = inputs[..., -K:].round().to(torch.int64)  # (B, T, K)
        pairs = enumerate(zip(self.categories, c.categories, strict=True))
        embedded = [emb(codes[..., k].clamp(0, n - 1)) for k, (emb, n) in pairs]
        return torch.cat([inputs[..., :-K], *embedded], dim=-1)  # (B, T, I - K + K*E)


def build_model(config: ModelConfig, seed: int = 0) -> SequenceModel:
    """A :class:`SequenceModel` whose initial weights depend only on ``seed``.

    Example::

        >>> a = build_model(ModelConfig(input_size=2, output_size=1), seed=3)
        >>> b = build_model(ModelConfig(input_size=2, output_size=1), seed=3)
        >>> all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
        True
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SequenceModel(config)


def predict_frames(model: SequenceModel, inputs: Tensor) -> Tensor:
    """Run ``model`` over one sequence frame by frame, carrying the state: one
    :meth:`SequenceModel.forward_state` call per step, in eval mode without gradients.

    The result equals the whole-sequence call ``model.forward_state(inputs)`` (for a "last"
    readout, row t is the prediction for the sequence cut after step t).

    Shapes: inputs (T, I) float or (T,) int64 tokens; returns (T, O).

    Example::

        >>> model = build_model(ModelConfig(input_size=2, output_size=3, hidden=8))
        >>> predict_frames(model, torch.randn(5, 2)).shape
        torch.Size([5, 3])
    """
    was_training = model.training
    model.eval()
    state: tuple[Tensor, ...] | None = None
    rows = []
    try:
        with torch.no_grad():
            for t in range(inputs.shape[0]):
                y, state = model.forward_state(inputs[t : t + 1].unsqueeze(0), state)  # (1, 1, O)
                rows.append(y[0, 0])
    finally:
        model.train(was_training)
    return torch.stack(rows) if rows else torch.zeros(0, model.config.output_size)
