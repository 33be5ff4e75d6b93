"""Run by `bentoml serve` in the peers venv (benchmarks/peers.py): a bake's scikit-learn model,
dumped as joblib (peers_export.py), behind BentoML's JSON API. The body is the bake's own
/predict body, `{"instances": [{feature: value, ...}, ...]}`; the answer is the labels.
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
    """The joblib model; its `predict` on the rows as a DataFrame (the pipeline picks columns
    by name)."""

    def __init__(self) -> None:
        self.model = joblib.load(MODEL_FILE)

    @bentoml.api
    def predict(self, instances: list[dict[str, float | None]]) -> list:
        return self.model.predict(pd.DataFrame.from_records(instances)).tolist()
