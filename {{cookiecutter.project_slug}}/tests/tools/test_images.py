"""Image labels (tools/images.py): the model's, read from a real exported model, and OCI's."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tools import images
from tools.project import ROOT, git, version


def test_model_labels_come_from_the_exported_mlmodel(tmp_path: Path) -> None:
    # The shape MLflow writes: run_id at the top, the names training adds under metadata.
    mlmodel = {
        "artifact_path": "model",
        "run_id": "0123456789abcdef0123456789abcdef",
        "metadata": {
            "model_name": "a: name",
            "model_version": 7,
            "registry_uri": "https://mlflow.example.com",
        },
        "flavors": {"python_function": {"loader_module": "mlflow.sklearn"}},
    }
    (tmp_path / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    assert images.model_labels(tmp_path) == {
        "MODEL_NAME": "a: name",
        "MODEL_VERSION": "7",
        "MODEL_RUN_ID": "0123456789abcdef0123456789abcdef",
        "MODEL_REGISTRY_URI": "https://mlflow.example.com",
    }


def test_a_missing_model_says_how_to_make_one() -> None:
    model_dir = ROOT / "build" / "no-model-here"
    with pytest.raises(images.ImageError, match="make one with `nox -s train`"):
        images.model_labels(model_dir)


def test_oci_labels_name_the_commit_and_version() -> None:
    labels = images.oci_labels()
    assert labels["VERSION"] == version()
    assert labels["REVISION"] == (git("rev-parse", "HEAD") or "unknown")
    assert labels["PYTHON_VERSION"] == images.PYTHON


def test_labels_command_prints_key_value_lines(capsys: pytest.CaptureFixture[str]) -> None:
    assert images.main(["nonsense"]) == 2
    if (images.MODEL_DIR / "MLmodel").is_file():
        assert images.main(["labels"]) == 0
        assert capsys.readouterr().out.startswith("MODEL_NAME=")
    else:
        assert images.main(["labels"]) == 1
        assert "nox -s train" in capsys.readouterr().err


def test_the_runtime_build_argument_follows_the_exported_model(
    tmp_path: Path, exported_model: Path
) -> None:
    # Imported here: a top-level import would sort differently with each package name.
    from {{ cookiecutter.package_name }}.promotion import REGISTRY_URI_METADATA
    from {{ cookiecutter.package_name }}.serve.loading import ONNX_METADATA

    assert images.ONNX_METADATA == ONNX_METADATA
    assert images.REGISTRY_URI_METADATA == REGISTRY_URI_METADATA
    assert images.model_labels(exported_model)["MODEL_REGISTRY_URI"].startswith("sqlite:///")
    # The default model converts and verifies: its image installs onnxruntime, not sklearn.
    assert images.model_runtime(exported_model) == "onnx"
    mlmodel = yaml.safe_load((exported_model / "MLmodel").read_text())
    del mlmodel["metadata"][ONNX_METADATA]
    (tmp_path / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    assert images.model_runtime(tmp_path) == "sklearn"
