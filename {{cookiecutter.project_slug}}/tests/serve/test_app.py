"""Every endpoint over HTTP (FastAPI's TestClient), with the exported model and bad inputs."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sklearn.datasets import load_breast_cancer

from {{ cookiecutter.package_name }}.config import (
    ServeSettings,
)
from {{ cookiecutter.package_name }}.serve.app import (
    create_app,
    from_environment,
)
from {{ cookiecutter.package_name }}.serve.lifecycle import (
    ServingState,
)
from {{ cookiecutter.package_name }}.serve.loading import (
    load_model,
)
from {{ cookiecutter.package_name }}.serve.model import (
    ServedModel,
)

FRAME = load_breast_cancer(as_frame=True).data


def records(n: int) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in row.items()} for row in FRAME.iloc[:n].to_dict(orient="records")]


def expected(served_model: ServedModel, n: int) -> list[int]:
    predictions: list[int] = served_model.estimator.predict(FRAME.iloc[:n]).tolist()
    return predictions


def test_healthz_and_readyz_answer_ok(client: TestClient, served_model: ServedModel) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "model_version": served_model.version}


def test_metadata_describes_the_model(
    client: TestClient, served_model: ServedModel, settings: ServeSettings
) -> None:
    body = client.get("/metadata").json()
    assert body["model_name"] == served_model.name
    assert body["model_version"] == served_model.version
    assert body["run_id"] == served_model.run_id
    assert [f["name"] for f in body["features"]] == list(FRAME.columns)
    assert {f["type"] for f in body["features"]} == {"double"}
    assert body["classes"] == [0, 1]
    assert body["max_batch_size"] == settings.max_batch_size
    # The example is a ready-made /predict body.
    predicted = client.post("/predict", json=body["example"])
    assert predicted.status_code == 200


def test_metadata_names_the_runtime(client: TestClient, served_model: ServedModel) -> None:
    body = client.get("/metadata").json()
    assert body["runtime"] == getattr(served_model, "runtime", "scikit-learn")
    assert body.get("runtime_note") == getattr(served_model, "runtime_note", None)


def test_predict_records_and_lists(client: TestClient, served_model: ServedModel) -> None:
    response = client.post("/predict", json={"instances": records(20)})
    assert response.status_code == 200
    body = response.json()
    assert body["predictions"] == expected(served_model, 20)
    assert body["model_version"] == served_model.version
    assert len(body["probabilities"]) == 20
    assert all(abs(sum(p) - 1) < 1e-9 for p in body["probabilities"])
    lists = FRAME.iloc[:20].to_numpy().tolist()
    assert client.post("/predict", json={"instances": lists}).json() == body


@pytest.mark.parametrize(
    "payload",
    [
        {"dataframe_split": FRAME.iloc[:5].to_dict(orient="split", index=False)},
        {"dataframe_records": records(5)},
        {"instances": records(5)},
        {"inputs": FRAME.iloc[:5].to_dict(orient="list")},
    ],
    ids=["dataframe_split", "dataframe_records", "instances", "inputs"],
)
def test_invocations_answers_like_mlflow_serve(
    client: TestClient, served_model: ServedModel, payload: dict[str, Any]
) -> None:
    response = client.post("/invocations", json=payload)
    assert response.status_code == 200
    assert response.json() == {"predictions": expected(served_model, 5)}


def bad_requests() -> list[tuple[str, dict[str, Any], int, str]]:
    """(endpoint, httpx request arguments, status, error) for inputs the server must refuse."""
    good = records(1)[0]
    return [
        ("/predict", {"content": b'{"instances": ['}, 400, "malformed JSON"),
        ("/predict", {"content": b""}, 400, "empty body"),
        (
            "/predict",
            {"content": json.dumps({"instances": [{**good, "mean radius": float("nan")}]})},
            400,
            "malformed JSON",
        ),
        (
            "/predict",
            {"content": b'{"instances": [[Infinity' + b", 0" * 29 + b"]]}"},
            400,
            "malformed JSON",
        ),
        ("/predict", {"json": {"instances": []}}, 422, "empty batch"),
        ("/predict", {"json": {"instances": [{**good, "colour": 1.0}]}}, 422, "invalid input"),
        ("/predict", {"json": {"instances": [{"mean radius": 1.0}]}}, 422, "invalid input"),
        (
            "/predict",
            {"json": {"instances": [{**good, "mean radius": "big"}]}},
            422,
            "invalid input",
        ),
        ("/predict", {"json": {"instances": [[1.0, 2.0]]}}, 422, "invalid input"),
        (
            "/predict",
            {"json": {"rows": [good]}},
            422,
            "expected an object with one key, 'instances'",
        ),
        (
            "/predict",
            {"content": b"mean radius=1", "headers": {"content-type": "text/plain"}},
            415,
            "unsupported content type",
        ),
        ("/invocations", {"json": {"dataframe_records": [{}]}}, 422, "invalid input"),
        ("/invocations", {"json": {"tensor": [[1.0]]}}, 422, "expected exactly one of"),
        (
            "/invocations",
            {"content": b"a,b\n1,2", "headers": {"content-type": "text/csv"}},
            415,
            "unsupported content type",
        ),
    ]


@pytest.mark.parametrize(
    ("endpoint", "request_args", "status", "error"),
    bad_requests(),
    ids=[
        "truncated-json",
        "empty-body",
        "nan",
        "infinity",
        "empty-batch",
        "unknown-feature",
        "missing-feature",
        "wrong-type",
        "wrong-length",
        "wrong-key",
        "text-plain",
        "invocations-missing",
        "invocations-format",
        "invocations-csv",
    ],
)
def test_bad_input_is_a_4xx_json_error(
    client: TestClient, endpoint: str, request_args: dict[str, Any], status: int, error: str
) -> None:
    response = client.post(endpoint, **request_args)
    assert response.status_code == status
    assert response.json()["error"].startswith(error)
    assert response.json()["detail"]
    assert client.get("/readyz").status_code == 200  # and the server carries on


def test_invalid_input_names_row_and_feature(client: TestClient) -> None:
    bad = {**records(1)[0], "mean radius": "big"}
    response = client.post("/predict", json={"instances": [records(1)[0], bad]})
    assert response.json()["detail"] == [
        "row 1: feature 'mean radius' expects a finite number, got 'big'"
    ]


def test_batch_over_max_batch_size_is_422(client: TestClient, settings: ServeSettings) -> None:
    too_many = records(1) * (settings.max_batch_size + 1)
    response = client.post("/predict", json={"instances": too_many})
    assert response.status_code == 422
    assert response.json() == {
        "error": "batch too large",
        "detail": f"{len(too_many)} instances; MAX_BATCH_SIZE is {settings.max_batch_size}",
    }
    assert client.post("/predict", json={"instances": too_many[1:]}).status_code == 200


def test_declared_body_over_the_limit_is_413(client: TestClient, settings: ServeSettings) -> None:
    limit = settings.max_body_bytes
    response = client.post("/predict", content=b'{"instances": []}'.ljust(limit + 1))
    assert response.status_code == 413
    assert response.json() == {
        "error": "request body too large",
        "detail": f"Content-Length is {limit + 1} bytes; MAX_BODY_BYTES is {limit}",
    }


def test_chunked_body_over_the_limit_is_413(client: TestClient, settings: ServeSettings) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: sent with Transfer-Encoding: chunked
        yield b'{"instances": ['
        for _ in range(settings.max_body_bytes // 1000 + 1):
            yield b" " * 1000

    response = client.post("/invocations", content=chunks())
    assert response.status_code == 413
    assert "the body passed" in response.json()["detail"]


def test_unknown_route_and_wrong_method_are_json(client: TestClient) -> None:
    missing = client.get("/nope")
    assert missing.status_code == 404
    assert missing.json() == {"error": "not found", "detail": "GET /nope: Not Found; see /docs"}
    wrong = client.get("/predict")
    assert wrong.status_code == 405
    assert wrong.json()["error"] == "method not allowed"


def test_openapi_documents_the_endpoints(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/healthz", "/readyz", "/metadata", "/predict", "/invocations", "/metrics"):
        assert path in paths
    assert "instances" in json.dumps(paths["/predict"]["post"]["requestBody"])


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text output."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    prefix = name + ("{" + wanted + "}" if labels else "") + " "
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {name} {labels} in:\n{text}")


def test_metrics_count_requests_latency_and_predictions(client: TestClient) -> None:
    client.post("/predict", json={"instances": records(3)})
    client.post("/predict", json={"instances": records(2)})
    client.post("/invocations", json={"dataframe_records": records(4)})
    client.post("/predict", json={"instances": []})
    client.get("/no-such-page")
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    ok = {"endpoint": "/predict", "method": "POST", "status": "200"}
    assert metric(text, "http_requests_total", **ok) == 2
    assert metric(text, "http_requests_total", **{**ok, "status": "422"}) == 1
    assert metric(text, "http_requests_total", endpoint="other", method="GET", status="404") == 1
    assert metric(text, "predictions_total", endpoint="/predict") == 5
    assert metric(text, "predictions_total", endpoint="/invocations") == 4
    assert metric(text, "http_request_duration_seconds_count", endpoint="/predict") == 3
    assert metric(text, "model_ready") == 1


class GatedLoader:
    """The real loader, held back until the test opens the gate."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.loaded = threading.Event()

    def __call__(self, uri: str) -> ServedModel:
        assert self.gate.wait(timeout=60)
        try:
            return load_model(uri)
        finally:
            self.loaded.set()


def wait_until_ready(client: TestClient) -> int:
    for _ in range(200):
        status: int = client.get("/readyz").status_code
        if status == 200:
            break
        threading.Event().wait(0.05)
    return status


def test_model_loads_in_the_background(settings: ServeSettings) -> None:
    loader = GatedLoader()
    with TestClient(create_app(settings, loader=loader)) as client:
        assert client.get("/healthz").status_code == 200
        not_ready = client.get("/readyz")
        assert not_ready.status_code == 503
        assert not_ready.json() == {
            "error": "not ready",
            "detail": f"the model is still loading from {settings.model_uri}",
        }
        assert client.post("/predict", json={"instances": records(1)}).status_code == 503
        assert client.get("/metadata").status_code == 503
        loader.gate.set()
        assert loader.loaded.wait(timeout=60)
        assert wait_until_ready(client) == 200
        assert client.post("/predict", json={"instances": records(1)}).status_code == 200


def test_failed_load_is_reported_and_stops_the_server(settings: ServeSettings) -> None:
    reasons: list[str] = []
    stopped = threading.Event()

    def on_failure(reason: str) -> None:
        reasons.append(reason)
        stopped.set()

    broken = settings.model_copy(update={"model_uri": "/nonexistent/model"})
    with TestClient(create_app(broken, on_load_failure=on_failure)) as client:
        assert stopped.wait(timeout=30)
        response = client.get("/readyz")  # the event loop has run the callback by now
        assert response.status_code == 503
        assert (
            "loading the model failed: MODEL_URI='/nonexistent/model'" in response.json()["detail"]
        )
    assert "no MLmodel file" in reasons[0]


def test_readyz_fails_once_shutdown_begins(client: TestClient) -> None:
    state: ServingState = client.app.state.serving  # type: ignore[attr-defined]
    state.begin_shutdown()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["detail"] == "the server is shutting down"
    # In-flight and queued work still gets answers while draining.
    assert client.post("/predict", json={"instances": records(1)}).status_code == 200


def test_the_factory_builds_the_app_from_the_environment(
    exported_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODEL_URI", str(exported_model))
    monkeypatch.setenv("MAX_BATCH_SIZE", "7")
    with TestClient(from_environment()) as client:
        deadline = time.monotonic() + 60
        while client.get("/readyz").status_code != 200:  # the model loads in the background
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert client.get("/metadata").json()["max_batch_size"] == 7
