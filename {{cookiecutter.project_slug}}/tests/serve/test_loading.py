"""Loading the exported model without MLflow: the MLmodel file, the estimator, the registry."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from sklearn.datasets import load_breast_cancer

from {{ cookiecutter.package_name }}.promotion import (
    CHAMPION,
)
from {{ cookiecutter.package_name }}.serve.loading import (
    ModelLoadError,
    ModelMetadata,
    load_model,
    read_model_metadata,
)
from {{ cookiecutter.package_name }}.serve.model import (
    ServedModel,
)
from {{ cookiecutter.package_name }}.train import (
    TrainResult,
)

FEATURES = list(load_breast_cancer(as_frame=True).data.columns)


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


def test_model_metadata_is_read_without_scikit_learn_or_pandas(
    trained: TrainResult, exported_model: Path
) -> None:
    assert read_model_metadata(exported_model) == ModelMetadata(
        trained.model_name, trained.model_version, trained.run_id
    )
    # Image labels and tools read it in a bare environment: importing it must stay light.
    module = read_model_metadata.__module__
    heavy = "[m for m in ('sklearn', 'pandas', 'numpy', 'mlflow') if m in sys.modules]"
    code = f"import sys, {module}; print({heavy})"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (loaded.returncode, loaded.stdout.strip()) == (0, "[]"), loaded.stderr


def test_model_metadata_of_a_folder_without_mlmodel_says_so(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no MLmodel file"):
        read_model_metadata(tmp_path)


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


def truncate(path: Path) -> int:
    return path.write_bytes(path.read_bytes()[:100])


# Files a crash, a full disk or a careless copy left broken. Each member: what breaks them,
# and the file the one-line error must name.
BROKEN_FILES: dict[str, tuple[Any, str]] = {
    "empty-mlmodel": (lambda f: (f / "MLmodel").write_text(""), "MLmodel"),
    "malformed-yaml": (
        lambda f: (f / "MLmodel").write_text("flavors: [\n  sklearn: {\n"),
        "MLmodel",
    ),
    "yaml-list": (lambda f: (f / "MLmodel").write_text("- flavors\n- signature\n"), "MLmodel"),
    "not-utf8": (lambda f: (f / "MLmodel").write_bytes(b"flavors: \xff\xfe\n"), "MLmodel"),
    "flavors-a-list": (
        lambda f: (f / "MLmodel").write_text("flavors: [sklearn]\nsignature: {}\n"),
        "MLmodel",
    ),
    "signature-a-number": (
        lambda f: (f / "MLmodel").write_text(
            (f / "MLmodel").read_text().replace("signature:", "signature: 5\nwas:", 1)
        ),
        "MLmodel",
    ),
    "truncated-onnx-and-skops": (
        lambda f: [truncate(f / name) for name in ("model.onnx", "model.skops")],
        "model.skops",
    ),
    "skops-gone-onnx-unreadable": (
        lambda f: [(f / "model.skops").unlink(), (f / "onnx_reference.json").write_text("{")],
        "model.skops",
    ),
}


@pytest.mark.parametrize("member", list(BROKEN_FILES))
def test_broken_model_files_are_one_line_naming_the_setting_and_the_file(
    exported_model: Path, tmp_path: Path, member: str
) -> None:
    break_files, name = BROKEN_FILES[member]
    folder = tmp_path / "model"
    shutil.copytree(exported_model, folder)
    break_files(folder)
    with pytest.raises(ModelLoadError) as refused:
        load_model(str(folder))
    message = str(refused.value)
    assert message.startswith(f"MODEL_URI={str(folder)!r}: "), message
    assert str(folder / name) in message, message
    assert "Traceback" not in message


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
