"""``data=table``: regression on the user's own table, a CSV or Parquet file, one row a sample.

The file's header names the columns; ``target`` is the column to predict, ``features`` the
columns fed to the model (null: every other numeric column). The rows are split into train,
validation and test either by a seeded permutation (``split_seed``, ``val_fraction``,
``test_fraction``) or, when ``split_column`` names a column, by its values ``train``, ``val`` and
``test`` (a split fixed by the file itself: another tool's split, or the built-in data exported by
``scripts/export_data.py``, whose splits the seeded permutation could not reproduce).

Features are standardised with the mean and (population) standard deviation of the *training*
split only, so no statistic of a held-out row leaks into training; a feature constant on the
training split is only centred (its std is taken as 1). Targets stay in their own units, as in
``data=regression``, so MAE and RMSE read in them. The tensors are ``float32 [N, D]`` inputs and
``float32 [N, 1]`` targets, the built-in regression data's contract.

Reading is not cached: a CSV of 100,000 rows and 8 features takes about 0.8 s to set up
(importing pandas another 1 s), where ``torch.load`` of the same tensors would take 0.03 s
(measured on 2 busy CPU cores): a cache would save under 2 s a run, beside the ~6 s every run
spends importing torch and Lightning. pandas is imported here, when a table is read, so
``python train.py`` starts no slower.

The writer beside the reader, :func:`export_regression`, writes a regression datamodule's splits
as one CSV with a ``split`` column, floats printed with ``%.9g`` (nine significant digits give
back every float32 exactly).
"""

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from datasets._base import SPLITS, TensorBatches
from datasets.errors import DataError
from datasets.files import FileDataModule, split_indices
from losses.checks import check_range

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)

SUFFIXES = (".csv", ".parquet")
FLOAT_FORMAT = "%.9g"  # nine significant digits: the shortest that round-trips every float32
LISTED_COLUMNS = 20  # a message lists at most this many of a table's columns


def _listing(columns: Sequence) -> str:
    """Column names for a message, the first :data:`LISTED_COLUMNS` of a wide table.

    >>> _listing(["a", "b"])
    'a, b'
    >>> _listing([f"c{i}" for i in range(30)])[-20:]
    'c19, ... (30 in all)'
    """
    names = [str(c) for c in columns[:LISTED_COLUMNS]]
    more = f", ... ({len(columns)} in all)" if len(columns) > LISTED_COLUMNS else ""
    return ", ".join(names) + more


def read_table(path: Path, name: str) -> "pd.DataFrame":
    """The table in ``path`` (``.csv`` or ``.parquet``, by its suffix) with at least one row;
    anything that keeps it from being read raises :class:`DataError` naming the file."""
    if not path.exists():
        raise DataError(f"{name}: {path} does not exist")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(
            f"{name}: {path} has the suffix {path.suffix!r}; expected a table file ending in "
            f"{' or '.join(SUFFIXES)}"
        )
    import pandas as pd  # here, not at the top: only a run on a table pays for importing it

    try:
        frame = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    # pandas' and pyarrow's parse errors are ValueErrors; ImportError: Parquet without pyarrow
    except (OSError, ValueError, ImportError) as error:
        raise DataError(f"{name}: cannot read {path}: {_one_line(error)}") from None
    if frame.empty:
        raise DataError(f"{name}: {path} holds no rows (columns: {_listing(frame.columns)})")
    return frame


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def feature_columns(
    frame: "pd.DataFrame",
    path: Path,
    name: str,
    target: str,
    features: list[str] | None,
    split_column: str | None,
) -> list[str]:
    """The feature columns: ``features`` in their order, or (null) every numeric column but the
    target and the split column, in the file's order. A named column the table lacks raises
    :class:`DataError` listing the table's columns.

    A column of text is numeric when some of its cells read as numbers: a typo in a column of
    numbers (``1,5``) must stop the run, naming the cell, not drop the column; only a column
    of which no cell is a number (a name, a category) is left out, with a warning.
    """
    import pandas as pd

    named = [("data.target", target), ("data.split_column", split_column)]
    named += [("data.features", column) for column in features or ()]
    for role, column in named:
        if column is not None and column not in frame.columns:
            raise DataError(
                f"{name}: {path} has no column {column!r} ({role}); its columns: "
                f"{_listing(frame.columns)}"
            )
    if features is not None:
        for role, column in named[:2]:
            if column in features:
                raise DataError(f"{name}: data.features names {column!r}, which is {role}")
        return features
    others = [column for column in frame.columns if column not in (target, split_column)]
    chosen = [
        column
        for column in others
        if pd.api.types.is_numeric_dtype(frame[column])
        # its distinct values only: a category column of 100,000 rows has a handful
        or pd.to_numeric(pd.Series(frame[column].unique()), errors="coerce").notna().any()
    ]
    if not chosen:
        raise DataError(
            f"{name}: {path} has no numeric column besides the target {target!r} to use as a "
            f"feature; its columns: {_listing(frame.columns)}"
        )
    if left_out := [column for column in others if column not in chosen]:
        log.warning(
            "%s: %s: columns without a number left out of the features: %s",
            name,
            path,
            _listing(left_out),
        )
    return chosen


def numeric_values(
    frame: "pd.DataFrame", column: str, role: str, path: Path, name: str
) -> "np.ndarray":
    """The column as float64 ``[N]`` (as pandas parses a CSV's numbers: the tensors round them
    to float32 once); a cell that is not a number, or a missing or non-finite one, raises
    :class:`DataError` naming the column and the first such row (data row 1 is the first below
    the header)."""
    import numpy as np
    import pandas as pd

    series = frame[column]
    numbers = pd.to_numeric(series, errors="coerce")  # a cell that is no number -> NaN
    not_numbers = (numbers.isna() & series.notna()).to_numpy()
    if not_numbers.any():
        row = int(not_numbers.argmax())
        raise DataError(
            f"{name}: {path}: column {column!r} ({role}) is not numeric: data row {row + 1} "
            f"holds {series.iloc[row]!r}"
        )
    values = numbers.to_numpy(dtype="float64", na_value=math.nan)
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(bad.argmax())
        raise DataError(
            f"{name}: {path}: column {column!r} ({role}) has {int(bad.sum())} missing or "
            f"non-finite values (an empty cell, NaN or inf), the first in data row {row + 1} "
            f"({values[row]})"
        )
    return values


def marked_splits(
    frame: "pd.DataFrame", column: str, path: Path, name: str
) -> tuple[Tensor, Tensor, Tensor]:
    """Train, val and test row indices (in the file's order) from the split column's values."""
    import numpy as np

    values = frame[column].to_numpy(dtype=object)
    unknown = ~np.isin(values, SPLITS)
    if unknown.any():
        row = int(unknown.argmax())
        raise DataError(
            f"{name}: {path}: column {column!r} (data.split_column) holds {values[row]!r} in "
            f"data row {row + 1}; expected {', '.join(SPLITS)}"
        )
    indices = tuple(torch.from_numpy(np.flatnonzero(values == split)) for split in SPLITS)
    for split, index in zip(SPLITS, indices, strict=True):
        if len(index) == 0:
            raise DataError(
                f"{name}: {path}: column {column!r} (data.split_column) marks no row as {split}"
            )
    return indices


def training_statistics(train: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and population std (float64 ``[D]``) of the training features; a feature constant on
    the training split gets its value as mean and std 1, so it becomes exactly 0 there.

    >>> mean, std = training_statistics(torch.tensor([[1.0, 0.1], [3.0, 0.1]]))
    >>> mean.tolist(), std.tolist()
    ([2.0, 0.10000000149011612], [1.0, 1.0])
    """
    x = train.double()
    constant = x.amin(dim=0) == x.amax(dim=0)
    mean = torch.where(constant, x[0], x.mean(dim=0))
    std = torch.where(constant, 1.0, x.std(dim=0, correction=0))
    return mean, std


class TableDataModule(FileDataModule):
    """``data=table``: regression on a CSV or Parquet file (see the module doc).

    ``path`` is the file (the base's ``root`` is the folder holding it). ``feature_names``,
    ``feature_mean`` and ``feature_std`` (the training statistics applied, float64) are known
    after ``setup``.
    """

    task = "regression"
    name = "table"
    num_outputs = 1  # one target column

    def __init__(
        self,
        path: str,
        target: str,
        features: Sequence[str] | None = None,
        split_column: str | None = None,
        split_seed: int = 0,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        standardize: bool = True,
        batch_size: int = 128,
        eval_batch_size: int = 1000,
        num_workers: int = 0,
    ) -> None:
        path = Path(path).expanduser()
        # the base's root is the file's folder; its cache_dir and max_memory keep their defaults,
        # unused: the table is read whole each run, uncached (see the module doc)
        super().__init__(path.parent, batch_size, eval_batch_size, num_workers)
        if isinstance(features, str):
            raise TypeError(
                f"{self.name}: expected features as a list of column names, e.g. "
                f"data.features=[{features}], got {features!r}"
            )
        if features is not None and len(features) == 0:
            raise ValueError(
                f"{self.name}: expected features null (every numeric column) or a "
                "list of column names, got an empty list"
            )
        for key, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            # the core's split leaves a split of fraction 0 empty; a run needs rows in each
            check_range(self.name, key, value, 0.0, 1.0, low_open=True, high_open=True)
        self.path = path
        # Hydra reads data.target=2020 as a number; a table's column names are strings
        self.target = str(target)
        self.features = None if features is None else [str(column) for column in features]
        self.split_column = None if split_column is None else str(split_column)
        self.split_seed = split_seed
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.standardize = standardize
        self.feature_names: list[str] | None = None
        self.feature_mean: Tensor | None = None
        self.feature_std: Tensor | None = None

    def read(self) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor, Tensor]]:
        """Inputs ``float32 [N, D]`` and targets ``float32 [N, 1]`` of every row, in the file's
        order, and the train, val and test row indices."""
        import numpy as np

        frame = read_table(self.path, self.name)
        names = feature_columns(
            frame, self.path, self.name, self.target, self.features, self.split_column
        )
        role = "data.features" if self.features is not None else "a feature: data.features is null"
        columns = [numeric_values(frame, c, role, self.path, self.name) for c in names]
        inputs = torch.from_numpy(np.stack(columns, axis=1)).float()
        target = numeric_values(frame, self.target, "data.target", self.path, self.name)
        targets = torch.from_numpy(np.stack([target], axis=1)).float()
        if self.split_column is None:
            splits = split_indices(
                len(frame), self.val_fraction, self.test_fraction, self.split_seed, self.name
            )
        else:
            splits = marked_splits(frame, self.split_column, self.path, self.name)
        self.feature_names = names
        return inputs, targets, splits

    def build_splits(self) -> tuple[TensorBatches, TensorBatches, TensorBatches]:
        inputs, targets, splits = self.read()
        train_rows = len(splits[0])
        if train_rows < self.batch_size:
            raise DataError(
                f"{self.name}: {self.path}: the training split has {train_rows} rows, fewer "
                f"than one batch (data.batch_size={self.batch_size}); lower data.batch_size or "
                f"give the table more rows"
            )
        if self.standardize:
            self.feature_mean, self.feature_std = training_statistics(inputs[splits[0]])
            inputs = ((inputs.double() - self.feature_mean) / self.feature_std).float()
        return tuple(TensorBatches(inputs[index], targets[index]) for index in splits)

    @property
    def in_shape(self) -> list[int]:
        self.setup()
        return [len(self.feature_names)]

    @property
    def data_stats(self) -> dict:
        """``target_mean``: the mean of the training targets (as ``data=regression`` gives it)."""
        self.setup()
        return {"target_mean": float(self.splits["train"].targets.double().mean())}


def export_regression(datamodule, out_dir: Path, limit: int | None) -> Path:
    """Write a regression datamodule's splits to ``out_dir/<name>.csv``: features ``x1..xD``,
    target ``y`` and a ``split`` column (train, val, test), the first ``limit`` rows of each split
    (all without), floats as ``%.9g``; what :class:`TableDataModule` reads back with
    ``target=y split_column=split standardize=false``, tensor for tensor. Returns the file."""
    import pandas as pd

    datamodule.setup()
    frames = []
    for split in SPLITS:
        batches = datamodule.splits[split]
        rows = len(batches) if limit is None else min(limit, len(batches))
        inputs, targets = batches.__getitems__(list(range(rows)))  # as the model is fed them
        if targets.ndim != 2 or targets.shape[1] != 1:
            raise ValueError(
                f"{datamodule.name}: expected targets [N, 1] to export, got {list(targets.shape)}"
            )
        frame = pd.DataFrame(
            inputs.numpy(), columns=[f"x{i}" for i in range(1, inputs.shape[1] + 1)]
        )
        frame["y"] = targets[:, 0].numpy()
        frame["split"] = split
        frames.append(frame)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{datamodule.name}.csv"
    pd.concat(frames, ignore_index=True).to_csv(path, index=False, float_format=FLOAT_FORMAT)
    return path
