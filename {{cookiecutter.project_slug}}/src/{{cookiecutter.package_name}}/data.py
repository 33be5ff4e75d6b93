"""Load the training data and split it: scikit-learn's bundled data for the task, or a CSV file."""

from __future__ import annotations

import unicodedata
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.model_selection import train_test_split

from .config import Task, redacted
from .serve.errors import one_line

BUNDLED_SOURCE = "sklearn.datasets.load_breast_cancer"
BUNDLED_REGRESSION_SOURCE = "sklearn.datasets.load_diabetes"  # 442 rows, 10 features
# Per task: (name, source, how messages call it), and the loader that reads it.
BUNDLED = {
    Task.CLASSIFICATION: ("breast_cancer", BUNDLED_SOURCE, "the bundled breast-cancer data"),
    Task.REGRESSION: ("diabetes", BUNDLED_REGRESSION_SOURCE, "the bundled diabetes data"),
}
LOADERS = {Task.CLASSIFICATION: load_breast_cancer, Task.REGRESSION: load_diabetes}
# What pandas needs to read DATA_PATH URLs of these schemes (each brings fsspec with it).
FSSPEC_PACKAGES = {"s3": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs"}
# More distinct numeric labels than this, or any fractional one: a quantity, not classes.
MAX_NUMERIC_CLASSES = 50
# How many duplicated names (and columns of each) a message shows: a header can repeat thousands.
SHOWN = 5


class DataError(ValueError):
    """The training data cannot be used; the message names the file or column and the fix."""


@dataclass(frozen=True)
class Dataset:
    """Features and target of one data source, ready for the pipeline."""

    name: str
    source: str  # a file path, or a BUNDLED source
    frame: pd.DataFrame  # features and target, as logged to MLflow
    target_column: str
    task: Task = Task.CLASSIFICATION

    @property
    def bundled(self) -> bool:
        return any(self.source == source for _, source, _ in BUNDLED.values())

    @property
    def features(self) -> pd.DataFrame:
        return self.frame.drop(columns=[self.target_column])

    @property
    def target(self) -> pd.Series:
        return self.frame[self.target_column]


@dataclass(frozen=True)
class Split:
    """A train/test split of a Dataset (stratified by class for classification)."""

    x_train: pd.DataFrame
    x_test: pd.DataFrame
    y_train: pd.Series
    y_test: pd.Series


def load_dataset(
    location: str | Path | None, target_column: str, task: Task = Task.CLASSIFICATION
) -> Dataset:
    """Read `location` (a CSV file with a header, or its URL), or the task's bundled data."""
    if location is None:
        name, source, where = BUNDLED[task]
        frame = LOADERS[task](as_frame=True).frame
    else:
        source = redacted(str(location))
        where = f"DATA_PATH={source}"
        frame = _read_csv(str(location), where)
        name = PurePosixPath(urlsplit(source).path).stem if is_url(source) else Path(source).stem
    if target_column not in frame.columns:
        available = ", ".join(map(str, frame.columns))
        raise DataError(
            f"TARGET_COLUMN={target_column!r} is not a column of {where}; "
            f"available columns: {available}"
        )
    return Dataset(name, source, _clean(frame, target_column, where, task), target_column, task)


def split(dataset: Dataset, test_size: float, seed: int) -> Split:
    """Split into train and test sets; classes keep the balance of the whole data set."""
    classification = dataset.task is Task.CLASSIFICATION
    try:
        x_train, x_test, y_train, y_test = train_test_split(
            dataset.features,
            dataset.target,
            test_size=test_size,
            random_state=seed,
            stratify=dataset.target if classification else None,
        )
    except ValueError:  # too few rows (per class) for the requested test size
        if not classification:
            raise DataError(
                f"cannot split {dataset.source} with TEST_SIZE={test_size}: "
                f"{len(dataset.frame)} rows leave one of the sets empty"
            ) from None
        counts = dataset.target.value_counts()
        shown = counts.to_dict() if len(counts) <= 10 else f"{len(counts)} classes"
        raise DataError(
            f"cannot split {dataset.source} with TEST_SIZE={test_size}: "
            f"{int((counts < 2).sum())} classes have fewer than 2 rows (rows per class: {shown}); "
            "every class needs enough rows for both sets"
        ) from None
    return Split(x_train, x_test, y_train, y_test)


def is_url(location: str) -> bool:
    """Whether DATA_PATH names a URL (pandas reads it) rather than a file here."""
    return "://" in location


def _read_csv(path: str, where: str) -> pd.DataFrame:
    if not is_url(path) and not Path(path).is_file():
        raise DataError(f"{where} does not exist or is not a file; give a CSV file path or URL")
    try:
        _check_header(path, where)
        with warnings.catch_warnings():
            # Rows longer than the header: pandas would make their first fields the index and
            # put each value under its neighbour's name. index_col=False makes that a warning.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            # One pass over the whole file, so a column gets one type (chunks could differ).
            frame = pd.read_csv(path, low_memory=False, index_col=False)
    except pd.errors.ParserWarning:
        raise DataError(
            f"{where}: rows have more fields than the header names; give every column a name"
        ) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{where} is empty; it needs a header row and data rows") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise DataError(f"{where} is not a readable CSV file: {error}") from None
    except ImportError:  # s3://, gs://...: pandas reads them through fsspec and its plug-ins
        scheme = urlsplit(path).scheme
        package = FSSPEC_PACKAGES.get(scheme, f"fsspec and the fsspec package for {scheme}://")
        raise DataError(
            f"{where}: reading {scheme}:// needs {package}: `uv add {package}`"
        ) from None
    except OSError as error:  # unreachable, refused, 404, no such bucket or object
        raise DataError(f"{where} cannot be read: {one_line(error)}") from None
    if frame.empty:
        raise DataError(f"{where} has a header but no data rows")
    return frame


def _check_header(path: str, where: str) -> None:
    """Refuse a header that names a column twice, before pandas renames the second `x.1`.

    The raw header row comes from pandas' own parser (same quoting, BOM and blank-line rules),
    as text. Names match when they differ only by surrounding whitespace or Unicode
    compatibility forms: `target ` beside `target` would train on the label as a feature.
    """
    row = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False).iloc[0]
    names = [str(name) for name in row]
    positions: defaultdict[str, list[int]] = defaultdict(list)
    for position, name in enumerate(names):
        # pandas names an empty cell `Unnamed: <position>`, which a real column can also be.
        positions[_name_key(name or f"Unnamed: {position}")].append(position)
    duplicated = [found for found in positions.values() if len(found) > 1]
    if duplicated:
        shown = "; ".join(_describe_duplicate(names, found) for found in duplicated[:SHOWN])
        more = f" and {len(duplicated) - SHOWN} more" if len(duplicated) > SHOWN else ""
        raise DataError(
            f"{where} has duplicated column names: {shown}{more}; give each column one name"
        )


def _name_key(name: str) -> str:
    return unicodedata.normalize("NFKC", name).strip()


def _describe_duplicate(names: list[str], found: list[int]) -> str:
    """`'a' (columns 1, 3)`, with each spelling when they differ: `'a' (columns 1, 3: ' a')`."""
    columns = ", ".join(str(position + 1) for position in found[:SHOWN])
    if len(found) > SHOWN:
        columns += f" and {len(found) - SHOWN} more"
    spellings = list(dict.fromkeys(_shorten(names[position]) for position in found))
    others = f": also {', '.join(spellings[1:SHOWN])}" if len(spellings) > 1 else ""
    return f"{spellings[0]} (columns {columns}{others})"


def _shorten(name: str, limit: int = 40) -> str:
    """`name` quoted, cut to `limit` characters: a message stays one short line."""
    return repr(name if len(name) <= limit else name[: limit - 3] + "...")


def _clean(frame: pd.DataFrame, target_column: str, where: str, task: Task) -> pd.DataFrame:
    missing = int(frame[target_column].isna().sum())
    if missing:
        raise DataError(
            f"TARGET_COLUMN={target_column!r} of {where} has {missing} empty values; "
            "every row needs a label"
        )
    if task is Task.REGRESSION:
        frame = frame.assign(**{target_column: _regression_target(frame[target_column], where)})
    else:
        _check_classes(frame[target_column], where)
    if frame.shape[1] < 2:
        raise DataError(f"{where} has no feature columns besides TARGET_COLUMN={target_column!r}")
    frame = frame.copy()
    for column in frame.columns.drop(target_column):
        if pd.api.types.is_bool_dtype(frame[column]) or pd.api.types.is_numeric_dtype(
            frame[column]
        ):
            # Doubles accept JSON integers and nulls alike, so serving schemas stay simple.
            frame[column] = frame[column].astype("float64")
            _check_finite(frame[column], where)
        else:
            _check_not_mostly_numbers(frame[column], where)
            frame[column] = frame[column].astype(object)
    frame.columns = frame.columns.map(str)
    return frame


def _check_classes(target: pd.Series, where: str) -> None:
    if pd.api.types.is_numeric_dtype(target) and not pd.api.types.is_bool_dtype(target):
        fractional = bool((target % 1 != 0).any())
        if fractional or target.nunique() > MAX_NUMERIC_CLASSES:
            raise DataError(
                f"TARGET_COLUMN={target.name!r} of {where} looks continuous: "
                "to train a regressor, set TASK=regression (the project's `task` answer)"
            )
    if target.nunique() < 2:
        raise DataError(
            f"TARGET_COLUMN={target.name!r} of {where} has one class ({target.iloc[0]!r}); "
            "a classifier needs at least two"
        )


def _regression_target(target: pd.Series, where: str) -> pd.Series:
    """The target as finite doubles, or DataError naming the first value that is not."""
    if pd.api.types.is_bool_dtype(target) or not pd.api.types.is_numeric_dtype(target):
        text = pd.to_numeric(target, errors="coerce").isna()
        raise DataError(
            f"TARGET_COLUMN={target.name!r} of {where} is not numeric (first on "
            f"{_line(target, text if text.any() else ~text)}); a regression target is a "
            "number: use TASK=classification for labels"
        )
    target = target.astype("float64")
    _check_finite(target, where)
    if target.nunique() < 2:
        raise DataError(
            f"TARGET_COLUMN={target.name!r} of {where} is always {float(target.iloc[0])!r}; "
            "a regressor needs values that vary"
        )
    return target


def _line(values: pd.Series, mask: pd.Series) -> str:
    """Where the first flagged value is: its CSV line (header is line 1) and the value."""
    position = int(np.flatnonzero(mask.to_numpy())[0])
    value = values.iloc[position]
    return f"line {position + 2}: {value.item() if isinstance(value, np.generic) else value!r}"


def _check_finite(values: pd.Series, where: str) -> None:
    infinite = pd.Series(np.isinf(values.to_numpy()), index=values.index)
    if infinite.any():
        raise DataError(
            f"column {values.name!r} of {where} has {int(infinite.sum())} infinite values "
            f"(first on {_line(values, infinite)}); use finite numbers, or leave a cell empty"
        )


def _check_not_mostly_numbers(values: pd.Series, where: str) -> None:
    # A column of numbers with a few words in it is a typo, not a category: one-hot encoding it
    # would turn each number into its own category.
    present = values.notna()
    numeric = pd.to_numeric(values.where(present), errors="coerce").notna()
    text = present & ~numeric
    if numeric.sum() > text.sum() > 0:
        raise DataError(
            f"column {values.name!r} of {where} holds numbers in {int(numeric.sum())} rows and "
            f"text in {int(text.sum())} (first on {_line(values, text)}); make it all numbers "
            "(empty for missing) or all text"
        )
