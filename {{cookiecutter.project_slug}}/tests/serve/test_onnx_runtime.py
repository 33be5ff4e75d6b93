"""Serving through onnxruntime: the load-time check, the fallback and the slim-image refusal."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from {{ cookiecutter.package_name }}.serve.loading import (
    load_model,
)
from {{ cookiecutter.package_name }}.serve.model import (
    ServedModel,
)
from {{ cookiecutter.package_name }}.serve.onnx_runtime import (
    REFERENCE_FILE,
)

# Makes scikit-learn, pandas, SciPy and skops unimportable, as in the slim serving image,
# then loads the model folder given as argv[1] with the loading module named by argv[2]
# (by name: the package name may be long) and predicts one row.
WITHOUT_SKLEARN = """
import sys
BLOCKED = ("sklearn", "pandas", "scipy", "skops")
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not installed")
sys.meta_path.insert(0, Block())
import importlib
loading = importlib.import_module(sys.argv[2])
try:
    model = loading.load_model(sys.argv[1])
except loading.ModelLoadError as error:
    print("refused:", error)
    raise SystemExit(3)
row = [model.example[name] for name in model.names]
print(model.runtime, model.predict([row]).predictions,
      sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED))
"""


def disagreeing_copy(exported_model: Path, tmp_path: Path) -> Path:
    """The exported model with its reference probabilities shifted past the tolerance."""
    folder = Path(shutil.copytree(exported_model, tmp_path / "model"))
    reference = json.loads((folder / REFERENCE_FILE).read_text())
    reference["probabilities"] = [[p[0] - 1e-3, p[1] + 1e-3] for p in reference["probabilities"]]
    (folder / REFERENCE_FILE).write_text(json.dumps(reference))
    return folder


def test_the_exported_default_model_is_served_by_onnxruntime(served_model: ServedModel) -> None:
    assert (served_model.runtime, served_model.runtime_note) == ("onnxruntime", None)
    frame = load_breast_cancer(as_frame=True).data
    result = served_model.predict(frame.to_numpy().tolist())
    assert result.predictions == served_model.estimator.predict(frame).tolist()
    assert result.probabilities is not None
    np.testing.assert_allclose(
        result.probabilities, served_model.estimator.predict_proba(frame), atol=1e-5
    )


def test_a_disagreeing_onnx_model_falls_back_to_scikit_learn_saying_why(
    exported_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = load_model(str(disagreeing_copy(exported_model, tmp_path)))
    assert model.runtime == "scikit-learn"
    assert model.runtime_note is not None
    assert "disagrees with scikit-learn: probabilities differ by up to 0.001" in model.runtime_note
    fallbacks = [r for r in caplog.records if "not onnxruntime" in r.getMessage()]
    assert len(fallbacks) == 1  # one line says it
    assert model.fast  # the scikit-learn fast path, as before ONNX


def test_a_missing_onnx_file_falls_back_too(exported_model: Path, tmp_path: Path) -> None:
    folder = Path(shutil.copytree(exported_model, tmp_path / "model"))
    (folder / "model.onnx").unlink()
    model = load_model(str(folder))
    assert model.runtime == "scikit-learn"
    assert model.runtime_note is not None
    assert "cannot be read" in model.runtime_note


def test_onnx_serving_never_imports_scikit_learn_pandas_or_scipy(exported_model: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-c", WITHOUT_SKLEARN, str(exported_model), load_model.__module__],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    runtime, _, rest = run.stdout.strip().partition(" ")
    assert runtime == "onnxruntime"
    assert rest.endswith("[]")  # none of them was even attempted successfully


def test_without_scikit_learn_a_disagreeing_model_is_refused_with_the_reason(
    exported_model: Path, tmp_path: Path
) -> None:
    folder = disagreeing_copy(exported_model, tmp_path)
    run = subprocess.run(
        [sys.executable, "-c", WITHOUT_SKLEARN, str(folder), load_model.__module__],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 3, run.stderr
    [line] = run.stdout.splitlines()  # one line says why
    assert "disagrees with scikit-learn" in line
    assert "scikit-learn is not installed in this image" in line


# onnxruntime's telemetry wrote a device id and an events database under $HOME/.cache, and
# warned where it could not. Each member: a HOME, and the code importing onnxruntime.
QUIET_CLASS = {
    "serving-writable-home": ("writable", WITHOUT_SKLEARN),
    "serving-read-only-home": ("read-only", WITHOUT_SKLEARN),
    # Training's ONNX check and MLflow's onnx flavor import it through other modules.
    "training-imports": (
        "writable",
        "import sys, importlib; importlib.import_module(sys.argv[2].split('.')[0] + "
        "'.onnx_export'); import mlflow.onnx, skl2onnx, onnxruntime; print('imported')",
    ),
}


@pytest.mark.parametrize("member", list(QUIET_CLASS))
def test_onnxruntime_writes_and_says_nothing_of_its_own(
    exported_model: Path, tmp_path: Path, member: str
) -> None:
    home_kind, code = QUIET_CLASS[member]
    home = tmp_path / "home"
    home.mkdir(mode=0o555 if home_kind == "read-only" else 0o755)
    env = {"PATH": os.environ["PATH"], "HOME": str(home)}  # no ORT_* variable from outside
    run = subprocess.run(
        [sys.executable, "-c", code, str(exported_model), load_model.__module__],
        capture_output=True,
        text=True,
        env=env,
    )
    assert run.returncode == 0, run.stderr
    assert list(home.rglob("*")) == []
    assert "onnxruntime" not in run.stderr.lower()
    assert "telemetry" not in run.stderr.lower()
