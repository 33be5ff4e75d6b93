"""Train the pipeline, log the run to MLflow, register a version, gate and export it.

The registered version always exists, so a failed candidate stays inspectable; promotion.py
exports a passing one and moves the `champion` alias. Each failure is one `cli.TrainExit` tells.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import mlflow
import mlflow.sklearn
import pandas as pd
import skops.io
from mlflow.data.pandas_dataset import from_pandas
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature, infer_signature
from sklearn.pipeline import Pipeline
from sklearn.utils import assert_all_finite

from . import data, evaluate, onnx_export, plots, promotion, tracking
from .config import TrainSettings
from .pipeline import HYPERPARAMETERS_BY_TASK, build_pipeline
from .reference_bins import DRIFT_REFERENCE, reference
from .serve.errors import one_line
from .serve.nullable import NULLABLE_FEATURES, nullable_features

MODEL_ARTIFACT = "model"
# What loading the model needs, pinned as installed; MLflow adds itself. Listing them skips
# MLflow's requirement inference, which imports the model in a subprocess (~15 s).
MODEL_REQUIREMENTS = ("numpy", "pandas", "scikit-learn", "scipy", "skops")


@dataclass(frozen=True)
class TrainResult:
    """What one training run produced, for the CLI summary and for tests."""

    run_id: str
    metrics: dict[str, float]
    model_name: str
    model_version: str
    gate: evaluate.GateResult
    export_dir: Path | None  # None when the gate failed: the previous export stays
    seconds: float


def run(settings: TrainSettings, dataset: data.Dataset | None = None) -> TrainResult:
    """Train and evaluate on a seeded split; log, register, gate and export (`dataset`: what
    settings name, when the caller has loaded it already)."""
    started = time.perf_counter()
    if dataset is None:
        dataset = data.load_dataset(settings.data_path, settings.target_column, settings.task)
    parts = data.split(dataset, settings.test_size, settings.random_seed)
    tracking.connect(settings.mlflow_tracking_uri)  # before fitting: a dead server fails fast
    model = build_pipeline(settings.model_type, parts.x_train, settings.random_seed, settings.task)
    try:
        model.fit(parts.x_train, parts.y_train)
        _check_preprocessed(model, parts.x_train)
    except ValueError as error:  # what scikit-learn raises on values it cannot fit
        raise data.DataError(
            f"cannot fit {settings.model_type} on {dataset.source}: {one_line(error)}"
        ) from None
    holdout = evaluate.Holdout.of(model, parts.x_test, parts.y_test)  # predicted once
    scores = evaluate.metrics(holdout)
    try:
        return _record(settings, dataset, parts, model, holdout, scores, started)
    except (MlflowException, OSError) as error:  # OSError: requests' connection errors too
        where = tracking.describe(settings.mlflow_tracking_uri)
        raise tracking.TrackingError(f"{where} failed: {one_line(error)}") from None


def _check_preprocessed(model: Pipeline, x_train: pd.DataFrame) -> None:
    """Raise ValueError if preprocessing turned finite training values into NaN or infinity.

    Values near the float limit overflow the scaler's mean and variance. A linear model then
    refuses to fit, but trees accept NaN and would train with that column silently gone.
    """
    try:
        assert_all_finite(model[:-1].transform(x_train))  # dense or sparse
    except ValueError:
        raise ValueError(
            "values too large to scale: preprocessing made some NaN or infinite"
        ) from None


def _record(
    settings: TrainSettings,
    dataset: data.Dataset,
    parts: data.Split,
    model: Pipeline,
    holdout: evaluate.Holdout,
    scores: dict[str, float],
    started: float,
) -> TrainResult:
    """Log the run, register and tag the version; export and alias it if it passes the gate."""
    example = parts.x_train.head(5)
    signature = infer_signature(example, model.predict(example))
    # The first look at the champion, outside the lock: usually also the last.
    champion = promotion.score_champion(settings, parts, signature)
    experiment = mlflow.set_experiment(settings.mlflow_experiment_name)
    with mlflow.start_run(experiment_id=experiment.experiment_id) as active:
        mlflow.log_params(_params(settings, dataset))
        mlflow.log_metrics(scores)
        for path, figure in plots.for_holdout(holdout).items():
            mlflow.log_figure(figure, path)
        _log_inputs(dataset, parts)
        info = _log_model(model, parts, settings.model_name, signature)
        onnx_export.attach(model, parts.x_test, info)  # before export: the version carries it
    candidate = promotion.Candidate(
        settings, parts, signature, scores, str(info.registered_model_version), active.info.run_id
    )
    exported = promotion.settle(candidate, champion)
    return TrainResult(
        run_id=candidate.run_id,
        metrics=scores,
        model_name=settings.model_name,
        model_version=candidate.version,
        gate=candidate.gate,
        export_dir=exported,
        seconds=time.perf_counter() - started,
    )


def trusted_types(model: Pipeline) -> list[str]:
    """The types skops must be told to trust to load `model` (tree internals, for instance)."""
    return list(skops.io.get_untrusted_types(data=skops.io.dumps(model)))


def _params(settings: TrainSettings, dataset: data.Dataset) -> dict[str, Any]:
    return {
        "task": settings.task.value,
        "model_type": settings.model_type.value,
        **HYPERPARAMETERS_BY_TASK[settings.task][settings.model_type],
        "test_size": settings.test_size,
        "random_seed": settings.random_seed,
        "data_source": dataset.source,
        "target_column": dataset.target_column,
        "rows": len(dataset.frame),
        "features": dataset.frame.shape[1] - 1,
    }


def _log_inputs(dataset: data.Dataset, parts: data.Split) -> None:
    # A file's absolute path or the URL is recorded as the dataset's source; the bundled data
    # has none (MLflow then records the code that loaded it).
    location = dataset.source
    if not dataset.bundled and not data.is_url(location):
        location = str(Path(location).resolve())
    source = {} if dataset.bundled else {"source": location}
    with warnings.catch_warnings():
        # Features are doubles; an integer column is the label, which is never missing.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        # MLflow registers two local-file source types; either reads the path the same way.
        warnings.filterwarnings("ignore", message="The specified dataset source can be interp")
        for context, x, y in (
            ("training", parts.x_train, parts.y_train),
            ("testing", parts.x_test, parts.y_test),
        ):
            logged = from_pandas(
                x.assign(**{dataset.target_column: y}),
                targets=dataset.target_column,
                name=dataset.name,
                **source,
            )
            mlflow.log_input(logged, context=context)


def _log_model(
    model: Pipeline, parts: data.Split, model_name: str, signature: ModelSignature
) -> Any:
    return mlflow.sklearn.log_model(
        model,
        name=MODEL_ARTIFACT,
        signature=signature,
        input_example=parts.x_train.head(5),
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
        skops_trusted_types=trusted_types(model),
        pip_requirements=[f"{name}=={installed_version(name)}" for name in MODEL_REQUIREMENTS],
        registered_model_name=model_name,
        # From all the training data: the 5-row example alone would let the seed decide.
        metadata={
            NULLABLE_FEATURES: nullable_features(model, parts.x_train),
            DRIFT_REFERENCE: reference(parts.x_train),  # serve/drift.py's bins
        },
    )
