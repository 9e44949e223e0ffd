"""Sequence classification: one label per recorded sequence (gestures, spoken vowels, sensor traces).

The data is a UCR/UEA archive set shipped in an installed ``aeon`` or ``sktime`` (``dataset``,
e.g. ``"JapaneseVowels"``), or the user's own train and test files (``data_file``, ``test_file``:
``.ts`` or ``.npz``, see :mod:`lstmkit.tasks.sequence_files`). The set's own test split is the
test set. With ``validation`` = v > 0, a share v of each training class (at least one case, drawn
with a fixed seed) is held out as the validation set, scored by its loss.

Each channel k is standardised with the mean ``mu_k`` and std ``s_k`` of the training split's
values (every step inside every training case): ``x' = (x - mu_k) / s_k``. A missing value inside
a case becomes 0 after that, the channel's training mean. Cases keep their own lengths: a batch
is padded to its longest case and the model reads each case up to its own last step (packed).

The model reads the hidden state at each case's last step ("last" readout) and a linear head
gives K logits; the loss is the cross-entropy ``-log softmax(z)_y``. Metrics: ``loss``,
``accuracy``, ``balanced_accuracy`` (the mean over classes of the share of that class's cases
predicted right) and ``error`` = 1 - accuracy.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ._common import check_batch_size, check_generator, check_prediction, fixed_generator
from .base import Batch, Task
from .sequence_files import LabelledSequences, archive_set, read_sequences


def class_order(labels: np.ndarray) -> list[str]:
    """The distinct labels, numerically sorted when all are numbers, else as text."""
    distinct = sorted(set(labels.tolist()))
    try:
        return sorted(distinct, key=float)
    except ValueError:
        return distinct


class ClassifyTask(Task):
    """Classify whole sequences from a UCR/UEA set or your own .ts / .npz files (module docstring).

    Inputs (B, T, C) float32 zero-padded after each case's end; targets (B,) int64 class indices;
    the model emits (B, K) logits. ``classes`` holds the labels in index order.

    Example::

        >>> task = make_task("classify", dataset="JapaneseVowels")     # doctest: +SKIP
        >>> task.input_size, task.output_size, len(task.test_set())    # doctest: +SKIP
        (12, 9, 370)
    """

    name: ClassVar[str] = "classify"
    readout: ClassVar[str] = "last"
    paper: ClassVar[dict[str, object]] = {
        "source": "UCR/UEA time series classification archive (Dau et al. 2019; Bagnall et al. 2018)",
        "criterion": "none; accuracy on the set's own test split",
    }

    def __init__(
        self,
        dataset: str | None = None,
        data_file: str | None = None,
        test_file: str | None = None,
        normalize: str = "channel",
        validation: float = 0.0,
    ) -> None:
        if normalize not in ("channel", "none"):
            raise ValueError(f"normalize must be 'channel' or 'none' for classify; got {normalize!r}")
        if not (isinstance(validation, (int, float)) and 0.0 <= validation < 1.0):
            raise ValueError(f"validation must be a share in [0, 1); got {validation!r}")
        if dataset is not None and (data_file or test_file):
            raise ValueError("give either a dataset name or --data/--test files, not both")
        if dataset is None and not (data_file and test_file):
            raise ValueError("classify needs --dataset NAME (an aeon/sktime UCR/UEA set) or --data TRAIN --test TEST")
        self.dataset, self.data_file, self.test_file = dataset, data_file, test_file
        self.normalize, self.validation = normalize, float(validation)
        train_path, test_path = archive_set(dataset) if dataset is not None else (data_file, test_file)
        train, test = read_sequences(train_path), read_sequences(test_path)  # type: ignore[arg-type]
        if test.channels != train.channels:
            raise ValueError(f"train has {train.channels} channels, test {test.channels}")
        self.classes = class_order(train.labels)
        unseen = sorted(set(test.labels.tolist()) - set(self.classes))
        if unseen:
            raise ValueError(
                f"test labels {unseen[:5]} never appear in the training file (classes {self.classes[:10]})"
            )
        if len(self.classes) < 2:
            raise ValueError(f"the training file holds one class only ({self.classes[0]!r}); classification needs two")
        self.mean, self.std = self._scaling(train)
        self.input_size, self.output_size = train.channels, len(self.classes)
        fit, held = self._split(train)
        self._train = self._tensors(train, fit)
        self._val = self._tensors(train, held) if held.size else None
        self._test_data = self._tensors(test, np.arange(len(test.labels)))
        self.test_size = len(test.labels)
        self._summary = self._describe(train, test, fit, held)

    # ------------------------------------------------------------------ data
    def _scaling(self, train: LabelledSequences) -> tuple[np.ndarray, np.ndarray]:
        """(C,) mean and std of the training values (std 1 where a channel is constant or normalize='none')."""
        C = train.channels
        if self.normalize == "none":
            return np.zeros(C), np.ones(C)
        flat = train.values.reshape(-1, C)
        mean = np.nanmean(flat, axis=0)
        std = np.nanstd(flat, axis=0)
        return mean, np.where(std > 0, std, 1.0)

    def _split(self, train: LabelledSequences) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the cases that train and of those held out for validation (per class, seeded)."""
        n = len(train.labels)
        if self.validation == 0.0:
            return np.arange(n), np.arange(0)
        order = torch.randperm(n, generator=fixed_generator(12345)).numpy()
        held = []
        for label in self.classes:
            members = [i for i in order if train.labels[i] == label]
            k = max(1, round(self.validation * len(members)))
            held += members[:k] if len(members) > k else []
        held_arr = np.sort(np.asarray(held, dtype=np.int64))
        return np.setdiff1d(np.arange(n), held_arr), held_arr

    def _tensors(self, seqs: LabelledSequences, rows: np.ndarray) -> Batch:
        """Standardised, zero-filled (N, T, C) inputs, (N,) targets and lengths of the cases ``rows``."""
        lengths = seqs.lengths[rows]
        T = int(lengths.max()) if rows.size else 1
        x = (seqs.values[rows, :T] - self.mean) / self.std
        x = np.where(np.isfinite(x), x, 0.0)
        index = {c: k for k, c in enumerate(self.classes)}
        y = np.asarray([index[label] for label in seqs.labels[rows]], dtype=np.int64)
        return Batch(
            torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y), torch.from_numpy(lengths.astype(np.int64))
        )

    def _describe(self, train: LabelledSequences, test: LabelledSequences, fit: np.ndarray, held: np.ndarray) -> dict:
        both = np.concatenate([train.lengths, test.lengths])
        inside = [np.isnan(s.values[n, : s.lengths[n]]).sum() for s in (train, test) for n in range(len(s.labels))]
        return {
            "dataset": self.dataset or f"{self.data_file} / {self.test_file}",
            "train_cases": int(fit.size),
            "validation_cases": int(held.size),
            "test_cases": len(test.labels),
            "channels": train.channels,
            "classes": len(self.classes),
            "min_length": int(both.min()),
            "max_length": int(both.max()),
            "missing_values": int(sum(inside)),
        }

    def describe(self) -> dict[str, Any]:
        """What was read: case counts, channels, classes, the range of lengths, missing values inside cases."""
        return dict(self._summary)

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        """``batch_size`` training cases drawn uniformly with replacement, padded to the longest of them."""
        check_batch_size(batch_size)
        check_generator(generator)
        rows = torch.randint(len(self._train), (batch_size,), generator=generator)
        lengths = self._train.lengths[rows]
        T = int(lengths.max())
        return Batch(self._train.inputs[rows, :T], self._train.targets[rows], lengths)

    def make_test_set(self) -> Batch:
        """The set's own test split, every case in file order."""
        return self._test_data

    def validation_set(self) -> Batch | None:
        """The held-out training cases (None without ``validation``)."""
        return self._val

    @property
    def validation_metric(self) -> str | None:
        """``loss`` when a validation share is held out (lower is better), else None."""
        return "loss" if self._val is not None else None

    # ------------------------------------------------------------------ loss and metrics
    def loss(self, prediction: Tensor, batch: Batch) -> Tensor:
        """Mean cross-entropy of the (B, K) logits against the (B,) class indices."""
        check_prediction(prediction, (len(batch), self.output_size), self.name)
        return F.cross_entropy(prediction, batch.targets.to(prediction.device))

    def metrics(self, prediction: Tensor, batch: Batch) -> dict[str, float]:
        """``loss``, ``accuracy``, ``balanced_accuracy`` and ``error``."""
        with torch.no_grad():
            loss = float(self.loss(prediction.detach(), batch))
            guess = prediction.detach().argmax(-1).cpu()
            truth = batch.targets.cpu()
            right = (guess == truth).to(torch.float64)
            recalls = [float(right[truth == k].mean()) for k in range(self.output_size) if bool((truth == k).any())]
            accuracy = float(right.mean())
        return {
            "loss": loss,
            "accuracy": accuracy,
            "balanced_accuracy": float(np.mean(recalls)),
            "error": 1.0 - accuracy,
        }

    def confusion(self, prediction: Tensor, batch: Batch) -> list[list[int]]:
        """K x K counts: row = true class, column = predicted class (order of ``classes``)."""
        K = self.output_size
        flat = batch.targets.cpu() * K + prediction.detach().argmax(-1).cpu()
        return torch.bincount(flat, minlength=K * K).view(K, K).tolist()

    def config(self) -> dict[str, object]:
        return {
            "dataset": self.dataset,
            "data_file": self.data_file,
            "test_file": self.test_file,
            "normalize": self.normalize,
            "validation": self.validation,
        }
