"""What each server of benchmarks/peers.py is sent and answers, for the same rows: the bake's
`/predict` records, the Open Inference Protocol (KServe V2) as one [N, F] tensor or as one
tensor per column (MLServer's pandas codec), BentoML's JSON API; the labels read back from each
answer, and whether two servers' labels agree. Pure: tests/test_peers.py covers it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

Rows = Sequence[Sequence[Any]]
V2_MODEL = "model"  # the name the peers' MLServer model repositories give the model
V2_INFER = f"/v2/models/{V2_MODEL}/infer"
V2_BATCH_INPUT = "input-0"  # the [N, F] tensor's name: any name that is not a feature's
CEILING, OURS, OURS_V2 = "ceiling", "ours", "ours-v2"  # the servers that are not peers


def instances(columns: Sequence[str], rows: Rows) -> bytes:
    """The bake's /predict body (BentoML's service takes the same): one record per row."""
    records = [dict(zip(columns, row, strict=True)) for row in rows]
    return json.dumps({"instances": records}).encode()


def v2_tensor(columns: Sequence[str], rows: Rows, name: str = V2_BATCH_INPUT) -> bytes:
    """One [N, F] FP64 tensor, features in `columns` order, row-major."""
    data = [value for row in rows for value in row]
    tensor = {"name": name, "shape": [len(rows), len(columns)], "datatype": "FP64", "data": data}
    return json.dumps({"inputs": [tensor]}).encode()


def v2_columns(columns: Sequence[str], rows: Rows, outputs: Sequence[str] = ()) -> bytes:
    """One [N] FP64 tensor per column, decoded by MLServer as a DataFrame (its scikit-learn
    runtime hands the pipeline named columns only so); `outputs` names the outputs asked for
    (else the server's default)."""
    inputs = [
        {"name": column, "shape": [len(rows)], "datatype": "FP64", "data": [r[i] for r in rows]}
        for i, column in enumerate(columns)
    ]
    body: dict[str, Any] = {"parameters": {"content_type": "pd"}, "inputs": inputs}
    if outputs:
        body["outputs"] = [{"name": name} for name in outputs]
    return json.dumps(body).encode()


def predictions(answer: Any) -> list[Any]:
    """Labels from the bake's /predict answer (the BentoML service answers the same shape)."""
    return list(answer["predictions"])


def v2_predict(answer: Any) -> list[Any]:
    """Labels from a V2 answer: the `predict` output (else the first), flattened."""
    outputs = answer["outputs"]
    chosen = next((o for o in outputs if o["name"] == "predict"), outputs[0])
    return list(chosen["data"])


def disagreement(ours: Sequence[Any], theirs: Sequence[Any]) -> str | None:
    """Why two servers' labels for the same rows differ, or None when they agree (numbers
    within a relative 1e-6: regressors' float sums differ by runtime, labels never)."""
    if len(ours) != len(theirs):
        return f"{len(theirs)} answers for {len(ours)} rows"
    for row, (mine, other) in enumerate(zip(ours, theirs, strict=True)):
        numbers = all(isinstance(v, int | float) for v in (mine, other))
        if not (math.isclose(mine, other, rel_tol=1e-6) if numbers else mine == other):
            return f"row {row}: ours {mine!r}, theirs {other!r}"
    return None


@dataclass(frozen=True)
class Contender:
    """A server in the comparison and how to talk to it."""

    name: str  # "mlserver-onnx"
    protocol: str  # "V2 tensor", shown in the table
    path: str
    body: Callable[[Sequence[str], Rows], bytes]
    labels: Callable[[Any], list[Any]]
    peer: bool = True  # False for ours and the ceiling: no ours/this ratio
