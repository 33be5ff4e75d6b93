"""Loading the exported model without MLflow, and predicting exactly like the pipeline does."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
import skops.io
import yaml
from mlflow.models import infer_signature
from sklearn.datasets import load_breast_cancer

from {{ cookiecutter.package_name }}.config import (
    ModelType,
)
from {{ cookiecutter.package_name }}.pipeline import (
    build_pipeline,
)
from {{ cookiecutter.package_name }}.serve.model import (
    Feature,
    ModelLoadError,
    ServedModel,
    load_model,
    to_frame,
)
from {{ cookiecutter.package_name }}.train import (
    CHAMPION,
    TrainResult,
)

FEATURES = list(load_breast_cancer(as_frame=True).data.columns)


def rows_of(records: list[dict[str, Any]], model: ServedModel) -> list[list[Any]]:
    return [[record[name] for name in model.names] for record in records]


def test_reads_metadata_signature_and_example(
    served_model: ServedModel, trained: TrainResult, exported_model: Path
) -> None:
    assert (served_model.name, served_model.version, served_model.run_id) == (
        trained.model_name,
        trained.model_version,
        trained.run_id,
    )
    assert served_model.names == FEATURES
    assert {f.type for f in served_model.features} == {"double"}
    assert served_model.example is not None
    assert list(served_model.example) == FEATURES
    assert served_model.classes == [0, 1]
    assert served_model.source == str(exported_model)


def test_fast_path_predicts_like_the_pipeline(
    served_model: ServedModel, example_rows: list[dict[str, Any]]
) -> None:
    assert served_model.fast  # the default pipeline qualifies for the array path
    frame = load_breast_cancer(as_frame=True).data
    rows = frame.to_numpy().tolist()
    result = served_model.predict(rows)
    assert result.predictions == served_model.estimator.predict(frame).tolist()
    assert result.probabilities is not None
    np.testing.assert_allclose(
        result.probabilities, served_model.estimator.predict_proba(frame), rtol=1e-9
    )


def test_folder_without_mlmodel_names_the_uri_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"MODEL_URI='.*missing'.*nox -s train"):
        load_model(str(tmp_path / "missing"))


def edited_copy(exported_model: Path, tmp_path: Path, edit: Any) -> Path:
    """A copy of the exported model whose MLmodel YAML went through `edit`."""
    folder = tmp_path / "model"
    shutil.copytree(exported_model, folder)
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    edit(mlmodel)
    (folder / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    return folder


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m["flavors"].pop("sklearn"), "no sklearn flavor"),
        (
            lambda m: m["flavors"]["sklearn"].update(serialization_format="cloudpickle"),
            "only 'skops' models are served",
        ),
        (lambda m: m.pop("signature"), "no input signature with named columns"),
        (
            lambda m: m["signature"].update(
                inputs='[{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1]}}]'
            ),
            "is not a named column",
        ),
    ],
    ids=["no-sklearn-flavor", "pickle", "no-signature", "tensor-signature"],
)
def test_unservable_models_are_refused_with_the_reason(
    exported_model: Path, tmp_path: Path, edit: Any, message: str
) -> None:
    with pytest.raises(ModelLoadError, match=message):
        load_model(str(edited_copy(exported_model, tmp_path, edit)))


def test_missing_example_and_metadata_are_tolerated(exported_model: Path, tmp_path: Path) -> None:
    folder = edited_copy(exported_model, tmp_path, lambda m: m.pop("metadata"))
    (folder / "input_example.json").unlink()
    model = load_model(f"file://{folder}")
    assert (model.name, model.version, model.run_id) == ("unknown", "unknown", "unknown")
    assert model.example is None
    assert not model.fast  # nothing to check the fast path against, so it is not used
    frame = load_breast_cancer(as_frame=True).data.head(3)
    assert model.predict(frame.to_numpy().tolist()).predictions == (
        model.estimator.predict(frame).tolist()
    )


def test_registry_uri_is_downloaded_and_served(
    trained: TrainResult, tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    model = load_model(f"models:/{trained.model_name}@{CHAMPION}")
    assert model.version == trained.model_version
    assert model.names == FEATURES


def test_unreachable_registry_says_to_set_the_tracking_uri(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(ModelLoadError, match="MLFLOW_TRACKING_URI"):
        load_model("models:/no-such-model@champion")


@pytest.fixture(scope="module")
def mixed_model(tmp_path_factory: pytest.TempPathFactory) -> ServedModel:
    """A model with integer, boolean and string columns, saved the way training saves models."""
    rng = np.random.default_rng(0)
    n = 200
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 90, n),
            "smoker": rng.integers(0, 2, n).astype(bool),
            "city": rng.choice(["paris", "lyon", "nice"], n),
        }
    )
    target = (frame["age"] > 50).astype(int)
    pipeline = build_pipeline(ModelType.LOGISTIC_REGRESSION, frame, seed=0).fit(frame, target)
    folder = tmp_path_factory.mktemp("mixed") / "model"
    mlflow.sklearn.save_model(
        pipeline,
        folder,
        signature=infer_signature(frame, pipeline.predict(frame)),
        input_example=frame.head(2),
        serialization_format="skops",
        skops_trusted_types=list(skops.io.get_untrusted_types(data=skops.io.dumps(pipeline))),
        pip_requirements=["scikit-learn"],  # skips MLflow's slow requirement inference
    )
    return load_model(str(folder))


def test_mixed_types_go_through_the_pipeline(mixed_model: ServedModel) -> None:
    assert [(f.name, f.type) for f in mixed_model.features] == [
        ("age", "long"),
        ("smoker", "boolean"),
        ("city", "string"),
    ]
    assert not mixed_model.fast
    rows = [[70, True, "lyon"], [20, False, "nice"], [60, False, "unknown-city"]]
    frame = pd.DataFrame(rows, columns=mixed_model.names)
    result = mixed_model.predict(rows)
    assert result.predictions == mixed_model.estimator.predict(frame).tolist()
    assert result.probabilities is not None
    assert len(result.probabilities[0]) == 2


def test_optional_integer_column_with_nulls_becomes_float_nan() -> None:
    features = [Feature("n", "long", required=False), Feature("s", "string")]
    frame = to_frame(features, [[1, "a"], [None, "b"]])
    assert frame["n"].dtype == np.float64
    assert np.isnan(frame["n"].iloc[1])
    assert frame["s"].tolist() == ["a", "b"]
