"""The Open Inference Protocol (KServe V2) routes over HTTP, with the exported model: health,
metadata, and infer with either tensor layout, answering like /predict and refusing alike."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn.datasets import load_breast_cancer, load_diabetes

from {{ cookiecutter.package_name }}.config import (
    ModelType,
    ServeSettings,
    Task,
)
from {{ cookiecutter.package_name }}.pipeline import (
    build_pipeline,
)
from {{ cookiecutter.package_name }}.serve.app import (
    ENDPOINTS,
    create_app,
)
from {{ cookiecutter.package_name }}.serve.features import (
    Feature,
)
from {{ cookiecutter.package_name }}.serve.model import (
    ServedModel,
)

from .test_app import FRAME, metric

ROWS = FRAME.iloc[:3].to_numpy().tolist()
NAMES = [str(c) for c in FRAME.columns]


def model_of(client: TestClient) -> ServedModel:
    served: ServedModel = client.app.state.serving.model  # type: ignore[attr-defined]
    return served


def infer(client: TestClient, body: Any, path: str = "/infer") -> Any:
    return client.post(f"/v2/models/{model_of(client).name}{path}", json=body)


def batch_tensor(rows: list[list[Any]], datatype: str = "FP64", nested: bool = False) -> Any:
    data = rows if nested else [value for row in rows for value in row]
    shape = [len(rows), len(rows[0])]
    return {"inputs": [{"name": "x", "shape": shape, "datatype": datatype, "data": data}]}


def feature_tensors(rows: list[list[Any]], column: bool = False) -> Any:
    def data(i: int) -> list[Any]:
        return [[row[i]] if column else row[i] for row in rows]

    shape = [len(rows), 1] if column else [len(rows)]
    return {
        "inputs": [
            {"name": name, "shape": shape, "datatype": "FP64", "data": data(i)}
            for i, name in enumerate(NAMES)
        ]
    }


def test_health_and_server_metadata(client: TestClient) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    name = model_of(client).name
    assert client.get(f"/v2/models/{name}/ready").json() == {"name": name, "ready": True}
    server = client.get("/v2").json()
    assert server["extensions"] == []
    assert server["name"]
    client.app.state.serving.begin_shutdown()  # type: ignore[attr-defined]
    for path in ("/v2/health/ready", f"/v2/models/{name}/ready"):
        stopping = client.get(path)
        assert stopping.status_code == 503
        assert stopping.json()["detail"] == "the server is shutting down"
    assert client.get("/v2/health/live").status_code == 200


def test_model_metadata_names_every_input_and_output(client: TestClient) -> None:
    served = model_of(client)
    body = client.get(f"/v2/models/{served.name}").json()
    assert body["name"] == served.name
    assert body["versions"] == [served.version]
    assert body["platform"] == {"onnxruntime": "onnxruntime_onnx"}.get(served.runtime, "sklearn")
    assert body["inputs"] == [{"name": n, "datatype": "FP64", "shape": [-1]} for n in NAMES]
    assert body["outputs"] == [
        {"name": "predict", "datatype": "INT64", "shape": [-1]},
        {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 2]},
    ]
    versioned = client.get(f"/v2/models/{served.name}/versions/{served.version}")
    assert versioned.json() == body


@pytest.mark.parametrize(
    "body",
    [
        batch_tensor(ROWS),
        batch_tensor(ROWS, nested=True),
        batch_tensor(ROWS, datatype="FP32"),
        feature_tensors(ROWS),
        feature_tensors(ROWS, column=True),
    ],
    ids=["batch-flat", "batch-nested", "batch-fp32", "per-feature", "per-feature-columns"],
)
def test_infer_answers_like_predict(client: TestClient, body: Any) -> None:
    expected = client.post("/predict", json={"instances": ROWS}).json()
    response = infer(client, {**body, "id": "req-1"})
    assert response.status_code == 200, response.text
    answer = response.json()
    served = model_of(client)
    assert (answer["model_name"], answer["model_version"]) == (served.name, served.version)
    assert answer["id"] == "req-1"
    labels, proba = answer["outputs"]
    assert labels == {
        "name": "predict",
        "datatype": "INT64",
        "shape": [3],
        "data": expected["predictions"],
    }
    assert (proba["name"], proba["datatype"], proba["shape"]) == ("predict_proba", "FP64", [3, 2])
    np.testing.assert_allclose(
        np.reshape(proba["data"], proba["shape"]), expected["probabilities"], rtol=1e-12
    )


def test_only_the_outputs_asked_for_are_answered(client: TestClient) -> None:
    body = {**batch_tensor(ROWS), "outputs": [{"name": "predict_proba"}]}
    answer = infer(client, body).json()
    assert [o["name"] for o in answer["outputs"]] == ["predict_proba"]
    assert "id" not in answer
    served = model_of(client)
    versioned = infer(client, body, f"/versions/{served.version}/infer")
    assert versioned.json() == answer


def test_an_unknown_model_or_version_is_a_json_404(client: TestClient) -> None:
    served = model_of(client)
    for path in ("/v2/models/nope", "/v2/models/nope/ready", f"/v2/models/{'n' * 5000}"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.json()["error"] == "unknown model"
        assert repr(served.name) in response.json()["detail"]
        assert len(response.content) < 1000
    wrong = client.post(f"/v2/models/{served.name}/versions/0/infer", json=batch_tensor(ROWS))
    assert wrong.status_code == 404
    assert wrong.json()["error"] == "unknown model version"
    made_up = client.post("/v2/models/nope/infer", json=batch_tensor(ROWS))
    assert made_up.status_code == 404


def test_v2_requests_are_counted_under_their_route_template(client: TestClient) -> None:
    infer(client, batch_tensor(ROWS))
    client.post("/v2/models/made-up-name/infer", json=batch_tensor(ROWS))
    text = client.get("/metrics").text
    template = "/v2/models/{name}/infer"
    ok = {"endpoint": template, "method": "POST"}
    assert metric(text, "http_requests_total", **ok, status="200") == 1
    assert metric(text, "http_requests_total", **ok, status="404") == 1
    assert metric(text, "predictions_total", endpoint=template) == 3
    assert "made-up-name" not in text


def test_the_openapi_body_names_the_features_and_its_example_is_served(
    client: TestClient,
) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    content = paths["/v2/models/{name}/infer"]["post"]["requestBody"]["content"]
    body = content["application/json"]
    batch, per_feature = body["schema"]["properties"]["inputs"]["oneOf"]
    assert batch["items"]["properties"]["shape"]["prefixItems"][1] == {"const": len(NAMES)}
    names = [option["properties"]["name"]["const"] for option in per_feature["items"]["oneOf"]]
    assert names == NAMES
    assert infer(client, body["example"]).status_code == 200
    parameters = paths["/v2/models/{name}/versions/{version}/infer"]["post"]["parameters"]
    assert [p["name"] for p in parameters] == ["name", "version"]


@pytest.fixture(scope="module")
def regressor() -> ServedModel:
    data = load_diabetes(as_frame=True).data
    target = load_diabetes(as_frame=True).target
    pipeline = build_pipeline(ModelType.RANDOM_FOREST, data, seed=0, task=Task.REGRESSION)
    features = [Feature(str(name), "double") for name in data.columns]
    example = {str(k): float(v) for k, v in data.iloc[0].items()}
    return ServedModel(
        pipeline.fit(data, target),
        features,
        name="diabetes",
        version="3",
        run_id="r",
        example=example,
        source="test",
    )


@pytest.fixture
def regressor_client(settings: ServeSettings, regressor: ServedModel) -> Iterator[TestClient]:
    with TestClient(create_app(settings, model=regressor)) as test_client:
        yield test_client


def test_a_regressor_answers_predict_only(regressor_client: TestClient) -> None:
    metadata = regressor_client.get("/v2/models/diabetes").json()
    assert metadata["outputs"] == [{"name": "predict", "datatype": "FP64", "shape": [-1]}]
    row = list(model_of(regressor_client).example.values())  # type: ignore[union-attr]
    body = {"inputs": [{"name": "all", "shape": [1, 10], "datatype": "FP64", "data": row}]}
    [output] = infer(regressor_client, body).json()["outputs"]
    assert (output["name"], output["datatype"], output["shape"]) == ("predict", "FP64", [1])
    asked = infer(regressor_client, {**body, "outputs": [{"name": "predict_proba"}]})
    assert asked.status_code == 422
    assert asked.json()["detail"] == "['predict_proba']; this model gives ['predict']"


def test_a_classifier_without_probabilities_answers_predict_only(settings: ServeSettings) -> None:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    target = load_breast_cancer(as_frame=True).target
    pipeline = make_pipeline(StandardScaler(), LinearSVC()).fit(FRAME, target)
    features = [Feature(name, "double") for name in NAMES]
    served = ServedModel(
        pipeline, features, name="svc", version="1", run_id="r", example=None, source="test"
    )
    with TestClient(create_app(settings, model=served)) as svc_client:
        outputs = svc_client.get("/v2/models/svc").json()["outputs"]
        assert outputs == [{"name": "predict", "datatype": "INT64", "shape": [-1]}]
        answer = infer(svc_client, batch_tensor(ROWS)).json()
        [labels] = answer["outputs"]
        assert labels["data"] == pipeline.predict(FRAME.iloc[:3]).tolist()


def test_the_serving_docs_name_every_route() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "serving.md").read_text()
    for path in ENDPOINTS:
        unversioned = path.replace("/versions/{version}", "")
        assert f" {unversioned}`" in docs, path
    assert "also under `/versions/{version}`" in docs
