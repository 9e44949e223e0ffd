"""Labelled sequence files for classification: the UCR/UEA ``.ts`` format, ``.npz``, and the
archive sets that ship inside the ``aeon`` / ``sktime`` packages.

Every reader returns a :class:`LabelledSequences`: ``values`` (N, T, C) float64 with NaN after each
case's end (and where a value is missing), ``lengths`` (N,) and ``labels`` (N,) as strings. A case's
length is one past its last step at which some channel holds a number, so NaN padding at the end
of a case never counts and a missing value (``?`` in ``.ts``, NaN in ``.npz``) inside it does.

``.ts`` (the archive's own text format): ``#`` or ``%`` comment lines, ``@`` header lines
(``@problemName``, ``@univariate``, ``@dimensions``, ``@equalLength``, ``@classLabel true a b c``,
``@timeStamps false``, ...) and, after ``@data``, one case per line: the channels separated by
``:``, the values of a channel by ``,``, the class label last. Channels of one case may differ
in length (the shorter ones are NaN-padded). Time-stamped files (``@timeStamps true``) are refused.

``.npz``: an array ``X`` (N, T, C) or (N, T) of floats, NaN-padded after each case's end, and ``y``
(N,) of labels (ints or strings).

Example::

    >>> seqs = read_sequences("GunPoint_TRAIN.ts")                  # doctest: +SKIP
    >>> seqs.values.shape, seqs.lengths[:2].tolist(), seqs.labels[:2].tolist()   # doctest: +SKIP
    ((50, 150, 1), [150, 150], ['2', '2'])
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ARCHIVE_PACKAGES = ("aeon", "sktime")
"""Installed packages searched, in this order, for ``datasets/data/NAME/NAME_TRAIN.ts``."""


@dataclass
class LabelledSequences:
    """N labelled cases: ``values`` (N, T, C) float64 NaN-padded, ``lengths`` (N,) int64, ``labels`` (N,) str."""

    values: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray

    @property
    def channels(self) -> int:
        """C, the number of channels."""
        return int(self.values.shape[2])


def read_sequences(path: str | Path) -> LabelledSequences:
    """Read a ``.ts`` or ``.npz`` file (module docstring); ValueError in one line when it does not fit."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give a .ts or .npz file")
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".ts":
        return read_ts(path)
    if suffix == ".npz":
        return read_npz(path)
    raise ValueError(f"{path}: expected a .ts (UCR/UEA archive) or .npz (X, y) file; got {suffix or 'no suffix'!r}")


def read_ts(path: str | Path) -> LabelledSequences:
    """Read a UCR/UEA ``.ts`` file (module docstring)."""
    path = Path(path)
    cases: list[list[list[float]]] = []
    labels: list[str] = []
    header: dict[str, str] = {}
    in_data = False
    with open(path, encoding="utf-8") as fh:
        for lineno, raw in enumerate(fh, start=1):
            line = raw.strip()
            if not line or line[0] in "#%":
                continue
            if not in_data:
                if not line.startswith("@"):
                    raise ValueError(
                        f"{path}:{lineno}: expected an @ header line or @data before the cases; got {line[:40]!r}"
                    )
                key, _, rest = line[1:].partition(" ")
                header[key.lower()] = rest.strip()
                in_data = key.lower() == "data"
                continue
            if header.get("timestamps", "false").lower() == "true":
                raise ValueError(f"{path}: time-stamped .ts files (@timeStamps true) are not read; give values only")
            channels, label = _ts_case(line, path, lineno, header.get("classlabel", "").lower().startswith("true"))
            cases.append(channels)
            labels.append(label)
    if not in_data:
        raise ValueError(f"{path}: not a .ts file (no @data line)")
    if not cases:
        raise ValueError(f"{path}: no cases after @data")
    width = {len(c) for c in cases}
    if len(width) != 1:
        raise ValueError(f"{path}: cases have different numbers of channels {sorted(width)}")
    T = max(len(ch) for c in cases for ch in c)
    values = np.full((len(cases), T, width.pop()), np.nan)
    for n, chans in enumerate(cases):
        for k, ch in enumerate(chans):
            values[n, : len(ch), k] = ch
    return _finish(values, np.asarray(labels, dtype=str), path)


def _ts_case(line: str, path: Path, lineno: int, labelled: bool) -> tuple[list[list[float]], str]:
    """One ``.ts`` data line -> (channels, label)."""
    parts = line.split(":")
    if labelled:
        if len(parts) < 2:
            raise ValueError(f"{path}:{lineno}: a case needs values and a class label after ':'")
        label, parts = parts[-1].strip(), parts[:-1]
    else:
        raise ValueError(f"{path}: the file has no class labels (@classLabel false); classification needs them")
    channels = []
    for part in parts:
        try:
            channels.append([np.nan if v.strip() in ("?", "NaN", "nan", "") else float(v) for v in part.split(",")])
        except ValueError:
            bad = next(v for v in part.split(",") if not _is_number(v))
            raise ValueError(f"{path}:{lineno}: not a number: {bad.strip()[:30]!r}") from None
    return channels, label


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return text.strip() in ("?", "NaN", "nan", "")
    return True


def read_npz(path: str | Path) -> LabelledSequences:
    """Read an ``.npz`` with ``X`` (N, T, C) or (N, T) NaN-padded floats and ``y`` (N,) labels."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in ("X", "y") if k not in data.files]
            if missing:
                raise ValueError(f"{path}: an .npz for classification needs arrays X and y; missing {missing}")
            X, y = data["X"], data["y"]
    except (OSError, EOFError) as err:
        raise ValueError(f"{path}: not a readable .npz file ({err})") from None
    if X.ndim == 2:
        X = X[:, :, None]
    if X.ndim != 3 or y.shape != (X.shape[0],):
        raise ValueError(f"{path}: X must be (N, T, C) or (N, T) and y (N,); got X {X.shape}, y {y.shape}")
    if not np.issubdtype(X.dtype, np.number):
        raise ValueError(f"{path}: X must hold numbers; got dtype {X.dtype}")
    return _finish(X.astype(np.float64), np.asarray(y).astype(str), path)


def _finish(values: np.ndarray, labels: np.ndarray, path: Path) -> LabelledSequences:
    """Lengths from the NaN padding; cases with no value at all are refused."""
    if values.shape[0] == 0 or values.shape[1] == 0:
        raise ValueError(f"{path}: no cases (X has shape {values.shape})")
    if np.isinf(values).any():
        raise ValueError(f"{path}: holds infinite values")
    present = np.isfinite(values).any(axis=2)  # (N, T)
    T = values.shape[1]
    lengths = T - np.argmax(present[:, ::-1], axis=1)  # one past the last step with a value
    empty = np.flatnonzero(~present.any(axis=1))
    if empty.size:
        raise ValueError(f"{path}: case {int(empty[0])} holds no values ({empty.size} such cases)")
    return LabelledSequences(values, lengths.astype(np.int64), labels)


def archive_sets() -> dict[str, tuple[Path, Path]]:
    """Name -> (train .ts, test .ts) of every UCR/UEA set shipped in an installed aeon or sktime."""
    found: dict[str, tuple[Path, Path]] = {}
    for package in ARCHIVE_PACKAGES:
        spec = importlib.util.find_spec(package)  # finds the folder without importing the package
        if spec is None or not spec.submodule_search_locations:
            continue
        for root in spec.submodule_search_locations:
            for train in sorted((Path(root) / "datasets" / "data").glob("*/*_TRAIN.ts")):
                name = train.name[: -len("_TRAIN.ts")]
                test = train.with_name(f"{name}_TEST.ts")
                if test.is_file() and name not in found and name != "UnitTestTimeStamps":
                    found[name] = (train, test)
    return found


def archive_set(name: str) -> tuple[Path, Path]:
    """(train, test) ``.ts`` paths of the archive set ``name`` (case-insensitive), or a one-line ValueError."""
    sets = archive_sets()
    if not sets:
        raise ValueError(
            f"dataset {name!r}: no UCR/UEA sets found; install aeon or sktime (they ship some), "
            "or give your own files with --data TRAIN --test TEST"
        )
    match = {k.lower(): k for k in sets}.get(name.lower())
    if match is None:
        raise ValueError(f"unknown dataset {name!r}; the installed ones are {sorted(sets)}")
    return sets[match]
