"""Input a hostile client sends: every class of it is a 4xx naming the problem, never a 5xx."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn.datasets import load_breast_cancer

from {{ cookiecutter.package_name }}.config import (
    ModelType,
    ServeSettings,
)
from {{ cookiecutter.package_name }}.pipeline import (
    build_pipeline,
)
from {{ cookiecutter.package_name }}.serve.app import (
    create_app,
)
from {{ cookiecutter.package_name }}.serve.features import (
    Feature,
)
from {{ cookiecutter.package_name }}.serve.model import (
    ServedModel,
)

from .test_app import metric

FRAME = load_breast_cancer(as_frame=True).data
ROW = [float(v) for v in FRAME.iloc[0]]
V2_INFER = "/v2/models/{name}/infer"  # the route (and /metrics label); posted with the model's name
ENDPOINTS = ["/predict", "/invocations", V2_INFER]


def wrap(endpoint: str, instances: str) -> bytes:
    """A body with `instances` (JSON text) in the endpoint's format; for V2, the data of one
    [rows, features] tensor (rows counted where the text parses)."""
    if endpoint == V2_INFER:
        try:
            rows = len(json.loads(instances))
        except (ValueError, RecursionError):
            rows = 1
        tensor = f'"name": "x", "shape": [{rows}, {len(ROW)}], "datatype": "FP64", "data": '
        return ('{"inputs": [{' + tensor + instances + "}]}").encode()
    key = "instances" if endpoint == "/predict" else "dataframe_records"
    return ('{"' + key + '": ' + instances + "}").encode()


def post(client: TestClient, endpoint: str, body: bytes, **headers: str) -> Any:
    name = client.app.state.serving.model.name  # type: ignore[attr-defined]
    return client.post(
        endpoint.format(name=name),
        content=body,
        headers={"Content-Type": "application/json", **headers},
    )


def row_with(value: str, endpoint: str = "/predict") -> str:
    """One row of the exported model's features, its first feature set to `value` (JSON): a
    record, or for V2 the values in feature order."""
    values = [value, *map(json.dumps, ROW[1:])]
    if endpoint == V2_INFER:
        return "[[" + ", ".join(values) + "]]"
    pairs = zip(FRAME.columns, values, strict=True)
    return "[{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in pairs) + "}]"


# Each member: (body for an endpoint, status, error, a piece of the detail).
PARSER_CLASS: dict[str, tuple[Callable[[str], bytes], int, str, str]] = {
    "10k-nested-arrays": (lambda e: b"[" * 10_000, 400, "JSON nested too deeply", "nests"),
    "nested-arrays-in-instances": (
        lambda e: wrap(e, "[" * 20_000 + "]" * 20_000),
        400,
        "JSON nested too deeply",
        "limit",
    ),
    "10k-nested-objects": (lambda e: b'{"a":' * 10_000, 400, "JSON nested too deeply", "nests"),
    "5000-digit-integer": (
        lambda e: wrap(e, row_with("9" * 5000, e)),
        400,
        "malformed JSON",
        "4300",
    ),
    "NaN-literal": (lambda e: wrap(e, row_with("NaN", e)), 400, "malformed JSON", "NaN"),
    "Infinity-literal": (
        lambda e: wrap(e, row_with("-Infinity", e)),
        400,
        "malformed JSON",
        "Infinity",
    ),
    "1e999-overflows-to-inf": (
        lambda e: wrap(e, row_with("1e999", e)),
        422,
        "invalid input",
        "inf",
    ),
    "lone-surrogate": (lambda e: wrap(e, row_with('"\\ud800"', e)), 422, "invalid input", "ud800"),
    "duplicate-key": (
        lambda e: wrap(e, '[{"mean radius": 1, "mean radius": 2}]'),
        400,
        "malformed JSON",
        "duplicate key 'mean radius'",
    ),
    "latin-1-bytes": (
        lambda e: wrap(e, row_with('"cafX"', e)).replace(b"cafX", b"caf\xe9"),
        400,
        "malformed JSON",
        "not UTF-8",
    ),
}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("member", list(PARSER_CLASS))
def test_json_the_parser_cannot_or_will_not_take_is_a_4xx(
    client: TestClient, endpoint: str, member: str
) -> None:
    make, status, error, detail = PARSER_CLASS[member]
    response = post(client, endpoint, make(endpoint))
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert detail in json.dumps(response.json()["detail"])


NAMES = list(FRAME.columns)


def split(columns: list[str], rows: int = 2) -> dict[str, Any]:
    """A dataframe_split body: `columns`, and rows of the first row's value for each name."""
    value = dict(zip(NAMES, ROW, strict=True))
    return {
        "dataframe_split": {
            "columns": columns,
            "data": [[value.get(name, 1.0) for name in columns]] * rows,
        }
    }


# Bodies naming one input twice: which value wins is the parser's accident, never the client's
# intent. Each member: (body, status, error, what the detail names).
AMBIGUOUS_CLASS: dict[str, tuple[bytes, int, str, str]] = {
    "split-column-twice": (
        json.dumps(split([*NAMES, NAMES[0]])).encode(),
        422,
        "dataframe_split names a column more than once",
        repr(NAMES[0]),
    ),
    "split-column-three-times-no-rows": (
        json.dumps(split([NAMES[3], *NAMES, NAMES[3]], rows=0)).encode(),
        422,
        "dataframe_split names a column more than once",
        repr(NAMES[3]),
    ),
    "split-unknown-column-twice": (
        json.dumps(split([*NAMES, "extra", "extra"])).encode(),
        422,
        "dataframe_split names a column more than once",
        "'extra'",
    ),
    "split-every-column-twice": (
        json.dumps(split(NAMES + NAMES)).encode(),
        422,
        "dataframe_split names a column more than once",
        repr(min(NAMES)),  # the first of them, sorted
    ),
    "inputs-columns-twice": (
        b'{"inputs": {"mean radius": [1.0], "mean radius": [2.0]}}',
        400,
        "malformed JSON",
        "duplicate key 'mean radius'",
    ),
    "records-key-twice-in-the-second-row": (
        # `[{row}, {row, "mean radius": 3}]`: a clean first record, then one with the key twice
        wrap(
            "/invocations",
            row_with("1.0")[:-1] + ", " + row_with("1.0")[1:-2] + ', "mean radius": 3}]',
        ),
        400,
        "malformed JSON",
        "duplicate key 'mean radius'",
    ),
}


@pytest.mark.parametrize("member", list(AMBIGUOUS_CLASS))
def test_an_input_named_twice_is_a_4xx_naming_it(client: TestClient, member: str) -> None:
    body, status, error, named = AMBIGUOUS_CLASS[member]
    response = post(client, "/invocations", body)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert named in response.json()["detail"]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize(
    "value",
    ["[" * 900 + "]" * 900, json.dumps("x" * 50_000), json.dumps({str(i): i for i in range(3000)})],
    ids=["900-levels-deep", "50k-string", "3000-key-object"],
)
def test_values_echoed_in_errors_are_cut_short(
    client: TestClient, endpoint: str, value: str
) -> None:
    response = post(client, endpoint, wrap(endpoint, row_with(value, endpoint)))
    assert response.status_code == 422
    assert response.json()["error"] == "invalid input"
    assert len(response.content) < 1000


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_utf8_byte_order_mark_is_skipped(client: TestClient, endpoint: str) -> None:
    # JSON parsers may ignore a BOM (RFC 8259, 8.1); Python's does.
    body = b"\xef\xbb\xbf" + wrap(endpoint, json.dumps([ROW]))
    assert post(client, endpoint, body).status_code == 200


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "GZIP, identity"])
def test_compressed_bodies_are_415_naming_the_encoding(
    client: TestClient, endpoint: str, encoding: str
) -> None:
    body = gzip.compress(wrap(endpoint, json.dumps([ROW])))
    response = post(client, endpoint, body, **{"Content-Encoding": encoding})
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported content encoding"
    assert repr(encoding) in response.json()["detail"]
    identity = post(
        client, endpoint, wrap(endpoint, json.dumps([ROW])), **{"Content-Encoding": "identity"}
    )
    assert identity.status_code == 200


def test_head_healthz_and_readyz_answer_like_get(client: TestClient) -> None:
    for path in ("/healthz", "/readyz"):
        response = client.head(path)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
    client.app.state.serving.begin_shutdown()  # type: ignore[attr-defined]
    assert client.head("/readyz").status_code == 503
    assert client.head("/healthz").status_code == 200


@pytest.fixture(scope="module")
def linear_model() -> ServedModel:
    """A logistic-regression pipeline: huge finite inputs overflow its scaled sums to NaN."""
    target = load_breast_cancer(as_frame=True).target
    pipeline = build_pipeline(ModelType.LOGISTIC_REGRESSION, FRAME, seed=0).fit(FRAME, target)
    features = [Feature(str(name), "double") for name in FRAME.columns]
    example = dict(zip(FRAME.columns, ROW, strict=True))
    return ServedModel(
        pipeline, features, name="linear", version="1", run_id="r", example=example, source="test"
    )


@pytest.fixture
def linear_client(settings: ServeSettings, linear_model: ServedModel) -> Iterator[TestClient]:
    with TestClient(create_app(settings, model=linear_model)) as client:
        yield client


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize(
    "extreme",
    [[1e308] * len(ROW), [-1e308] * len(ROW), [1e308, -1e308] * (len(ROW) // 2)],
    ids=["max", "min", "alternating"],
)
def test_a_non_finite_prediction_is_never_returned(
    linear_client: TestClient, endpoint: str, extreme: list[float]
) -> None:
    assert linear_model_gives_nan(linear_client, extreme)
    body = wrap(endpoint, json.dumps([ROW, extreme, ROW, extreme]))
    response = post(linear_client, endpoint, body)
    assert response.status_code == 422
    assert response.json()["error"] == "prediction out of range"
    assert "row(s) [1, 3]" in response.json()["detail"]
    metrics = linear_client.get("/metrics").text
    assert metric(metrics, "non_finite_predictions_total", endpoint=endpoint) == 2
    labels = {"endpoint": endpoint, "method": "POST", "status": "422"}
    assert metric(metrics, "http_requests_total", **labels) == 1
    assert post(linear_client, endpoint, wrap(endpoint, json.dumps([ROW]))).status_code == 200


def linear_model_gives_nan(client: TestClient, row: list[float]) -> bool:
    """The premise: the pipeline itself computes NaN for this finite row."""
    served: ServedModel = client.app.state.serving.model  # type: ignore[attr-defined]
    import sklearn

    with sklearn.config_context(assume_finite=True):  # as the server predicts
        return bool(np.isnan(served.estimator.predict_proba(served.frame([row]))).any())
