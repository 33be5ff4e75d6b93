"""Serve a model converted to ONNX with onnxruntime, once it agrees with scikit-learn.

Training writes the converted model and a reference (holdout rows plus what the scikit-learn
pipeline predicted for them) into the model folder and names both in the MLmodel `metadata`
(key `loading.ONNX_METADATA`).
The server runs the ONNX model on those rows again and serves it only if it still agrees.

Importing this module costs numpy alone: no pandas, scikit-learn or SciPy, which is what
keeps a serving process small. onnxruntime itself is imported when a model is loaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ONNX_FILE = "model.onnx"
REFERENCE_FILE = "onnx_reference.json"
RUNTIME = "onnxruntime"
# The agreement rule, checked at export and again at load: labels equal, class probabilities
# within this absolute tolerance, regression predictions within it relatively.
TOLERANCE = 1e-5


class OnnxPredictor:
    """An onnxruntime session on one float64 input: probabilities or predictions per row."""

    def __init__(self, model: bytes, classes: list[Any] | None) -> None:
        import onnxruntime

        onnxruntime.disable_telemetry_events()  # files are kept off by the package's __init__
        options = onnxruntime.SessionOptions()
        # One thread each: a serving process uses one core; more threads only contend with
        # the event loop and the other worker processes.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(
            model, options, providers=["CPUExecutionProvider"]
        )
        self.input = self.session.get_inputs()[0].name
        self.classes = classes
        outputs = [output.name for output in self.session.get_outputs()]
        # Classifiers (zipmap off) give label + probabilities; regressors one prediction column.
        self.output = "probabilities" if classes is not None else outputs[0]

    def run(self, x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """Probabilities (rows x classes) for a classifier, predictions (rows) for a regressor."""
        [out] = self.session.run([self.output], {self.input: x})
        result = np.asarray(out, dtype=np.float64)
        return result if self.classes is not None else result.reshape(len(result))


@dataclass(frozen=True, slots=True)
class Reference:
    """Rows and what scikit-learn predicted for them (labels; probabilities for classifiers)."""

    inputs: list[list[float | None]]
    predictions: list[Any]
    classes: list[Any] | None = None
    probabilities: list[list[float]] | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "inputs": self.inputs,
                "predictions": self.predictions,
                "classes": self.classes,
                "probabilities": self.probabilities,
            }
        )

    def head(self, rows: int) -> Reference:
        """The first `rows` rows and their answers."""
        return Reference(
            inputs=self.inputs[:rows],
            predictions=self.predictions[:rows],
            classes=self.classes,
            probabilities=None if self.probabilities is None else self.probabilities[:rows],
        )

    @classmethod
    def from_json(cls, text: str) -> Reference:
        content = json.loads(text)
        return cls(
            inputs=content["inputs"],
            predictions=content["predictions"],
            classes=content.get("classes"),
            probabilities=content.get("probabilities"),
        )


def disagreement(predictor: OnnxPredictor, reference: Reference) -> str | None:
    """Why `predictor` does not predict `reference` within TOLERANCE, or None if it does."""
    x = np.asarray(reference.inputs, dtype=np.float64)  # null -> NaN, as a request's would
    try:
        out = predictor.run(x)
    except Exception as error:  # onnxruntime raises its own types; any failure disagrees
        return f"onnxruntime failed on the reference rows ({error})"
    if reference.classes is None:
        expected = np.asarray(reference.predictions, dtype=np.float64)
        if not np.allclose(out, expected, rtol=TOLERANCE, atol=1e-12):
            worst = float(np.max(np.abs(out - expected) / np.maximum(np.abs(expected), 1e-12)))
            return f"predictions differ by up to {worst:.2g} (relative; tolerance {TOLERANCE})"
        return None
    expected_proba = np.asarray(reference.probabilities, dtype=np.float64)
    if out.shape != expected_proba.shape:
        return f"probabilities have shape {out.shape}, not {expected_proba.shape}"
    worst = float(np.max(np.abs(out - expected_proba), initial=0.0))
    if worst > TOLERANCE:
        return f"probabilities differ by up to {worst:.2g} (tolerance {TOLERANCE})"
    labels = np.asarray(reference.classes, dtype=object)[np.argmax(out, axis=1)].tolist()
    if labels != reference.predictions:
        return "predicted labels differ"
    return None


def load_checked(folder: Path, spec: Any) -> tuple[OnnxPredictor | None, str | None]:
    """The ONNX model `spec` names in `folder` if it agrees with its reference, else why not."""
    try:
        model = (folder / spec["model"]).read_bytes()
        reference = Reference.from_json((folder / spec["reference"]).read_text())
    except (OSError, ValueError, KeyError, TypeError) as error:
        return None, f"the ONNX model or its reference cannot be read ({error})"
    try:
        predictor = OnnxPredictor(model, reference.classes)
    except ImportError:
        return None, "onnxruntime is not installed"
    except Exception as error:  # a model onnxruntime cannot load
        return None, f"onnxruntime cannot load {spec['model']} ({error})"
    reason = disagreement(predictor, reference)
    if reason is not None:
        return None, f"the ONNX model disagrees with scikit-learn: {reason}"
    return predictor, None
