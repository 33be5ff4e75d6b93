"""Load the training data and split it: the bundled breast-cancer data or a user's CSV file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

BUNDLED_NAME = "breast_cancer"
BUNDLED_SOURCE = "sklearn.datasets.load_breast_cancer"


class DataError(ValueError):
    """The training data cannot be used; the message names the file or column and the fix."""


@dataclass(frozen=True)
class Dataset:
    """Features and target of one data source, ready for the pipeline."""

    name: str
    source: str  # a file path, or BUNDLED_SOURCE
    frame: pd.DataFrame  # features and target, as logged to MLflow
    target_column: str

    @property
    def features(self) -> pd.DataFrame:
        return self.frame.drop(columns=[self.target_column])

    @property
    def target(self) -> pd.Series:
        return self.frame[self.target_column]


@dataclass(frozen=True)
class Split:
    """A stratified train/test split of a Dataset."""

    x_train: pd.DataFrame
    x_test: pd.DataFrame
    y_train: pd.Series
    y_test: pd.Series


def load_dataset(path: Path | None, target_column: str) -> Dataset:
    """Read `path` (a CSV file with a header), or the bundled breast-cancer data when None."""
    if path is None:
        frame = load_breast_cancer(as_frame=True).frame
        name, source, where = BUNDLED_NAME, BUNDLED_SOURCE, "the bundled breast-cancer data"
    else:
        frame = _read_csv(path)
        name, source, where = path.stem, str(path), f"DATA_PATH={path}"
    if target_column not in frame.columns:
        available = ", ".join(map(str, frame.columns))
        raise DataError(
            f"TARGET_COLUMN={target_column!r} is not a column of {where}; "
            f"available columns: {available}"
        )
    return Dataset(name, source, _clean(frame, target_column, where), target_column)


def split(dataset: Dataset, test_size: float, seed: int) -> Split:
    """Split into train and test sets with the class balance of the whole data set."""
    try:
        x_train, x_test, y_train, y_test = train_test_split(
            dataset.features,
            dataset.target,
            test_size=test_size,
            random_state=seed,
            stratify=dataset.target,
        )
    except ValueError as error:  # too few rows per class for the requested test size
        counts = dataset.target.value_counts().to_dict()
        raise DataError(
            f"cannot split {dataset.source} with TEST_SIZE={test_size}: {error} "
            f"(rows per class: {counts}); every class needs enough rows for both sets"
        ) from None
    return Split(x_train, x_test, y_train, y_test)


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"DATA_PATH={path} does not exist or is not a file; give a CSV file path")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"DATA_PATH={path} is empty; it needs a header row and data rows") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise DataError(f"DATA_PATH={path} is not a readable CSV file: {error}") from None
    if frame.empty:
        raise DataError(f"DATA_PATH={path} has a header but no data rows")
    return frame


def _clean(frame: pd.DataFrame, target_column: str, where: str) -> pd.DataFrame:
    missing = int(frame[target_column].isna().sum())
    if missing:
        raise DataError(
            f"TARGET_COLUMN={target_column!r} of {where} has {missing} empty values; "
            "every row needs a label"
        )
    classes = frame[target_column].nunique()
    if classes < 2:
        value = frame[target_column].iloc[0]
        raise DataError(
            f"TARGET_COLUMN={target_column!r} of {where} has one class ({value!r}); "
            "a classifier needs at least two"
        )
    if frame.shape[1] < 2:
        raise DataError(f"{where} has no feature columns besides TARGET_COLUMN={target_column!r}")
    frame = frame.copy()
    for column in frame.columns.drop(target_column):
        if pd.api.types.is_bool_dtype(frame[column]) or pd.api.types.is_numeric_dtype(
            frame[column]
        ):
            # Doubles accept JSON integers and nulls alike, so serving schemas stay simple.
            frame[column] = frame[column].astype("float64")
        else:
            frame[column] = frame[column].astype(object)
    frame.columns = frame.columns.map(str)
    return frame
