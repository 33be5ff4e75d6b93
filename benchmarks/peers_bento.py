"""Run by `bentoml serve` in the peers venv (benchmarks/peers.py): a bake's scikit-learn model,
dumped as joblib (peers_export.py), behind BentoML's JSON API. The body is the bake's own
/predict body, `{"instances": [{feature: value, ...}, ...]}`; the answer is its answer's shape:
`predictions` and, for a classifier, `probabilities`.
"""

from __future__ import annotations

import os

import bentoml
import joblib
import pandas as pd

MODEL_FILE = os.environ["PEERS_MODEL_FILE"]


# One worker (BentoML's default), like the bake's one process; no access log, like the bake's
# server and MLServer (debug off): every server pays for the same work.
@bentoml.service(logging={"access": {"enabled": False}})
class Predictor:
    """The joblib model on the rows as a DataFrame (the pipeline picks columns by name)."""

    def __init__(self) -> None:
        self.model = joblib.load(MODEL_FILE)
        self.classifier = hasattr(self.model, "predict_proba")

    @bentoml.api
    def predict(self, instances: list[dict[str, float | None]]) -> dict:
        rows = pd.DataFrame.from_records(instances)
        if not self.classifier:
            return {"predictions": self.model.predict(rows).tolist()}
        # One pass through the pipeline, as the bake's server makes: labels from probabilities.
        probabilities = self.model.predict_proba(rows)
        labels = self.model.classes_[probabilities.argmax(axis=1)]
        return {"predictions": labels.tolist(), "probabilities": probabilities.tolist()}
