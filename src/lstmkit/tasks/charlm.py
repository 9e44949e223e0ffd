"""Character language model: predict the next character of a text, scored in bits per character.

The text comes from a UTF-8 file (``text_file=``) or, with none, from the help topics shipped with
every Python (``pydoc_data.topics``), so the task runs without downloads. The last
``holdout_fraction`` of the text is held out; the vocabulary is the sorted set of characters of
the training part, plus id 0 for any character outside it. Training windows of ``seq_len``
characters start at random positions of the training part; the test set is the held-out part cut
into consecutive windows. At every step the model predicts the next character::

    inputs  x_t = id(text[s + t])          t = 0 .. seq_len - 1
    targets y_t = id(text[s + t + 1])
    bits per character = mean_t CE(logits_t, y_t) / ln 2

For stateful training (``lstmkit train charlm --tbptt K``) the training text is cut into B equal
columns, as the classic word-level language-model recipe does (pytorch/examples), and stream b
reads column b in consecutive windows of K characters; a stream whose column has fewer than K + 1
characters left starts its column again (a reset).
"""

from __future__ import annotations

import math
import os
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ._common import check_batch_size, check_generator, check_int, check_prediction
from .base import Batch, Segment, Streams, Task

UNKNOWN = "\ufffd"
"""How id 0 (a character outside the vocabulary) decodes."""


def default_text() -> str:
    """The help topics of the running Python (``pydoc_data.topics``), about 0.5 MB of English and code.

    Example::

        >>> len(default_text()) > 100_000
        True
    """
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key] for key in sorted(topics))


def _read_text(path: str) -> str:
    """The file's text, or a one-line ValueError naming the file and the problem."""
    if not os.path.exists(path):
        raise ValueError(f"text_file {path!r}: no such file")
    if not os.path.isfile(path):
        raise ValueError(f"text_file {path!r}: not a regular file")
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except UnicodeDecodeError as err:
        raise ValueError(f"text_file {path!r}: not UTF-8 text (byte {err.start}: {err.reason})") from None
    except OSError as err:
        raise ValueError(f"text_file {path!r}: cannot read ({err.strerror})") from None
    if "\x00" in text:
        raise ValueError(f"text_file {path!r}: not text (contains NUL characters)")
    return text


class CharLMTask(Task):
    """Next-character prediction on a text file (or Python's help topics), metric bits per character.

    Inputs (B, seq_len) int64 character ids (``vocab_size`` is set, so the model embeds them);
    targets (B, seq_len) int64 next-character ids; mask (B, seq_len) all True; readout "all": the
    model emits (B, seq_len, vocab_size) logits.

    Loss: cross-entropy in nats per character; metrics ``loss``, ``bpc`` (= loss / ln 2) and
    ``accuracy`` (top-1). No success criterion (``solved`` is always False).

    ``config()`` stores the vocabulary, so ``make_task("charlm", **config)`` maps characters to the
    same ids even if the text changes. :meth:`encode` / :meth:`decode` convert between text and ids.

    Example::

        >>> task = CharLMTask(seq_len=32)
        >>> batch = task.sample(2, torch.Generator().manual_seed(0))
        >>> batch.inputs.shape, task.decode(task.encode("assert")) == "assert"
        (torch.Size([2, 32]), True)
    """

    name: ClassVar[str] = "charlm"
    has_streams: ClassVar[bool] = True
    vocab_size: int  # always set: the text's characters plus the unknown symbol
    readout: ClassVar[str] = "all"
    paper: ClassVar[dict[str, object]] = {
        "source": "character-level language modelling (as in Graves 2013, Karpathy et al. 2015); "
        "no paper numbers apply to this text",
        "criterion": "none; report bits per character on the held-out split",
    }

    def __init__(
        self,
        text_file: str | None = None,
        seq_len: int = 100,
        holdout_fraction: float = 0.1,
        vocab: str | None = None,
        test_size: int = 2560,
    ) -> None:
        self.seq_len = check_int("seq_len", seq_len, 1)
        self.test_size = check_int("test_size", test_size, 1)
        if isinstance(holdout_fraction, bool) or not isinstance(holdout_fraction, (int, float)):
            raise TypeError(f"holdout_fraction must be a number; got {holdout_fraction!r}")
        if not 0.0 < holdout_fraction < 1.0:
            raise ValueError(f"holdout_fraction must be in (0, 1); got {holdout_fraction}")
        self.holdout_fraction = float(holdout_fraction)
        if text_file is not None and not isinstance(text_file, (str, os.PathLike)):
            raise TypeError(f"text_file must be a path or None; got {text_file!r}")
        self.text_file = None if text_file is None else os.fspath(text_file)
        source = "the Python help topics" if self.text_file is None else f"text_file {self.text_file!r}"
        text = default_text() if self.text_file is None else _read_text(self.text_file)

        split = int(len(text) * (1.0 - self.holdout_fraction))
        need = self.seq_len + 1
        if split < need or len(text) - split < need:
            minimum = math.ceil(need / min(self.holdout_fraction, 1.0 - self.holdout_fraction))
            raise ValueError(
                f"{source} is too short: {len(text)} characters; need at least {minimum} for seq_len={self.seq_len} "
                f"with holdout_fraction={self.holdout_fraction}"
            )
        if vocab is None:
            vocab = "".join(sorted(set(text[:split])))
        elif not isinstance(vocab, str) or len(set(vocab)) != len(vocab) or not vocab:
            raise ValueError("vocab must be a non-empty string of distinct characters (as stored by config())")
        self.vocab = vocab
        self._index = {c: i + 1 for i, c in enumerate(vocab)}  # id 0: unknown character
        self.vocab_size = len(vocab) + 1
        self.output_size = self.vocab_size
        self.input_size = 0
        self.num_characters = len(text)
        self._train = self.encode(text[:split])  # (N_train,)
        self._held = self.encode(text[split:])  # (N_held,)

    # ------------------------------------------------------------------ text <-> ids
    def encode(self, text: str) -> Tensor:
        """(N,) int64 ids of the characters of ``text``; characters outside the vocabulary get id 0."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str; got {type(text).__name__}")
        return torch.tensor([self._index.get(c, 0) for c in text], dtype=torch.int64)

    def decode(self, ids: Tensor | list[int]) -> str:
        """The text of a 1-D sequence of ids (id 0 decodes as U+FFFD)."""
        values = ids.tolist() if isinstance(ids, Tensor) else list(ids)
        if values and isinstance(values[0], list):
            raise ValueError(f"decode expects a 1-D sequence of ids; got shape {tuple(torch.as_tensor(ids).shape)}")
        bad = [v for v in values if not 0 <= int(v) < self.vocab_size]
        if bad:
            raise ValueError(f"ids must be in [0, {self.vocab_size}); got {bad[0]}")
        return "".join(UNKNOWN if v == 0 else self.vocab[int(v) - 1] for v in values)

    # ------------------------------------------------------------------ data
    def _windows(self, ids: Tensor, starts: Tensor) -> Batch:
        offsets = starts.unsqueeze(1) + torch.arange(self.seq_len + 1)  # (B, T + 1)
        chunk = ids[offsets]
        b = len(starts)
        lengths = torch.full((b,), self.seq_len, dtype=torch.int64)
        mask = torch.ones(b, self.seq_len, dtype=torch.bool)
        return Batch(chunk[:, :-1].contiguous(), chunk[:, 1:].contiguous(), lengths, mask, {"start": starts})

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        """``batch_size`` windows at uniform random positions of the training text."""
        b = check_batch_size(batch_size)
        gen = check_generator(generator)
        starts = torch.randint(0, len(self._train) - self.seq_len, (b,), generator=gen)
        return self._windows(self._train, starts)

    def streams(self, batch_size: int) -> Streams:
        """``batch_size`` streams, stream b reading column b of the training text (see the module docstring)."""
        return TextColumns(self._train, check_batch_size(batch_size))

    def make_test_set(self) -> Batch:
        """Consecutive windows of the held-out text, from its start (at most ``test_size`` of them)."""
        count = min(self.test_size, (len(self._held) - 1) // self.seq_len)
        starts = torch.arange(count, dtype=torch.int64) * self.seq_len
        return self._windows(self._held, starts)

    # ------------------------------------------------------------------ loss and metrics
    def loss(self, prediction: Tensor, batch: Batch) -> Tensor:
        """Mean cross-entropy (nats per character); prediction (B, T, vocab_size) logits, T the batch's
        steps (seq_len, or the segment length K in stateful training)."""
        check_prediction(prediction, (*batch.targets.shape, self.vocab_size), self.name)
        target = batch.targets.to(prediction.device)
        return F.cross_entropy(prediction.reshape(-1, self.vocab_size), target.reshape(-1))

    def metrics(self, prediction: Tensor, batch: Batch) -> dict[str, float]:
        """``loss`` (nats/char), ``bpc`` (bits/char) and ``accuracy`` (top-1 next character)."""
        with torch.no_grad():
            loss = float(self.loss(prediction.detach(), batch))
            right = prediction.detach().argmax(dim=-1) == batch.targets.to(prediction.device)
        return {"loss": loss, "bpc": loss / math.log(2), "accuracy": float(right.to(torch.float64).mean())}

    def config(self) -> dict[str, object]:
        """Constructor arguments, JSON-ready, including the vocabulary."""
        return {
            "text_file": self.text_file,
            "seq_len": self.seq_len,
            "holdout_fraction": self.holdout_fraction,
            "vocab": self.vocab,
            "test_size": self.test_size,
        }


class TextColumns(Streams):
    """The training ids cut into B equal columns (the tail that does not fill a column is dropped);
    stream b reads column b in consecutive windows, inputs ``col[p : p + K]`` and targets
    ``col[p + 1 : p + K + 1]``, and starts its column again when fewer than K + 1 ids are left.

    Example::

        >>> cols = TextColumns(torch.arange(100), 4)      # 4 columns of 25 ids
        >>> seg = cols.next(10, torch.Generator())
        >>> seg.batch.inputs[1, :3].tolist(), seg.reset.tolist(), cols.state_dict()["positions"]
        ([25, 26, 27], [True, True, True, True], [10, 10, 10, 10])
    """

    def __init__(self, ids: Tensor, batch_size: int) -> None:
        self.batch_size = batch_size
        self.column = len(ids) // batch_size  # ids per column
        if self.column < 2:
            raise ValueError(f"{len(ids)} training characters cannot make {batch_size} streams of at least 2")
        self._columns = ids[: self.column * batch_size].view(batch_size, self.column)  # (B, N // B)
        self._positions = [0] * batch_size  # next input index in each column
        self._started = [False] * batch_size  # False until a stream's first segment (which is a reset)

    def next(self, length: int, generator: torch.Generator) -> Segment:
        check_int("length", length, 1)
        if length + 1 > self.column:
            raise ValueError(f"segments of {length} steps need columns of {length + 1} characters; got {self.column}")
        reset = torch.zeros(self.batch_size, dtype=torch.bool)
        for b in range(self.batch_size):
            if not self._started[b] or self._positions[b] + length + 1 > self.column:
                self._positions[b], self._started[b], reset[b] = 0, True, True
        starts = torch.tensor(self._positions, dtype=torch.int64)
        offsets = starts.unsqueeze(1) + torch.arange(length + 1)  # (B, K + 1)
        chunk = self._columns.gather(1, offsets)
        self._positions = [p + length for p in self._positions]
        lengths = torch.full((self.batch_size,), length, dtype=torch.int64)
        mask = torch.ones(self.batch_size, length, dtype=torch.bool)
        batch = Batch(chunk[:, :-1].contiguous(), chunk[:, 1:].contiguous(), lengths, mask, {"start": starts})
        return Segment(batch, reset)

    def state_dict(self) -> dict[str, Any]:
        return {"positions": list(self._positions), "started": list(self._started), "column": self.column}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        got = (len(state.get("positions", [])), state.get("column"))
        if got != (self.batch_size, self.column):
            raise ValueError(
                f"stream positions do not fit this text: expected {self.batch_size} streams over columns of "
                f"{self.column}; got {got[0]} over {got[1]}"
            )
        self._positions = [int(p) for p in state["positions"]]
        self._started = [bool(x) for x in state["started"]]
