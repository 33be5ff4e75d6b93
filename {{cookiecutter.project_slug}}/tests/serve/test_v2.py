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
from {{ cookiecutter.package_name }}.serve.errors import (
    ApiError,
)
from {{ cookiecutter.package_name }}.serve.features import (
    Feature,
)
from {{ cookiecutter.package_name }}.serve.model import (
    ServedModel,
)
from {{ cookiecutter.package_name }}.serve.requests import (
    RowValidator,
)
from {{ cookiecutter.package_name }}.serve.tensors import (
    TensorReader,
    label_datatype,
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


ONE = batch_tensor(ROWS[:1])["inputs"][0]
WIDTH = len(NAMES)
# Each member: (body, error, a piece of the detail); every one is a 422.
BAD_INFER: dict[str, tuple[Any, str, str]] = {
    "not-an-object": ([ONE], "expected an inference request", "got list"),
    "no-inputs": ({"data": [1]}, "expected an inference request", "got ['data']"),
    "unknown-key": ({"inputs": [ONE], "x": 1}, "expected an inference request", "'x'"),
    "id-not-a-string": ({"inputs": [ONE], "id": 7}, "'id' must be a string", "7"),
    "parameters-not-an-object": (
        {"inputs": [ONE], "parameters": [1]},
        "'parameters' must be an object",
        "[1]",
    ),
    "unknown-output": (
        {"inputs": [ONE], "outputs": [{"name": "shap"}]},
        "unknown output",
        "['shap']; this model gives ['predict', 'predict_proba']",
    ),
    "outputs-not-objects": ({"inputs": [ONE], "outputs": ["predict"]}, "'outputs' must be", ""),
    "no-tensors": ({"inputs": []}, "'inputs' must be a non-empty list of tensors", "[]"),
    "tensor-not-an-object": ({"inputs": [[1.0]]}, "bad input tensor", "inputs[0]"),
    "binary-data": (
        {"inputs": [{k: v for k, v in ONE.items() if k != "data"}]},
        "bad input tensor",
        "binary tensor data is not supported",
    ),
    "tensor-unknown-key": ({"inputs": [{**ONE, "contents": {}}]}, "bad input tensor", "contents"),
    "name-not-a-string": ({"inputs": [{**ONE, "name": 1}]}, "bad input tensor", "'name'"),
    "negative-shape": ({"inputs": [{**ONE, "shape": [-1, WIDTH]}]}, "bad input tensor shape", ""),
    "bool-in-shape": ({"inputs": [{**ONE, "shape": [True, WIDTH]}]}, "bad input tensor shape", ""),
    "unknown-datatype": ({"inputs": [{**ONE, "datatype": "FP8"}]}, "unknown datatype", "'FP8'"),
    "data-not-a-list": ({"inputs": [{**ONE, "data": "1,2"}]}, "bad input tensor", "'data'"),
    "batch-of-the-wrong-width": (
        {"inputs": [{**ONE, "shape": [2, WIDTH // 2]}]},
        "bad input tensor shape",
        f"[N, {WIDTH}] tensor with the features in the order",
    ),
    "batch-of-strings": (
        {"inputs": [{**ONE, "datatype": "BYTES"}]},
        "datatype does not fit the feature",
        f"input 'x' is BYTES; feature {NAMES[0]!r} (double) takes FP64",
    ),
    "fewer-values-than-the-shape": (
        {"inputs": [{**ONE, "data": ONE["data"][1:]}]},
        "tensor data does not match its shape",
        f"holds {WIDTH} values, 'data' has {WIDTH - 1}",
    ),
    "ragged-nesting": (
        {"inputs": [{**ONE, "shape": [2, WIDTH], "data": [ROWS[0], ROWS[1][1:]]}]},
        "tensor data does not match its shape",
        "",
    ),
    "empty-batch": ({"inputs": [{**ONE, "shape": [0, WIDTH], "data": []}]}, "empty batch", ""),
    "batch-too-large": (
        {"inputs": [{**ONE, "shape": [2**40, WIDTH]}]},
        "batch too large",
        f"{2**40} instances; MAX_BATCH_SIZE is 50",
    ),
    "size-past-uint64": (
        {"inputs": [{**ONE, "shape": [2**70, WIDTH]}]},
        "bad input tensor shape",
        "is not a list of sizes",
    ),
    "a-string-value": (
        {"inputs": [{**ONE, "data": ["big", *ONE["data"][1:]]}]},
        "invalid input",
        f"row 0: feature {NAMES[0]!r} expects a finite number, got 'big'",
    ),
    "a-bool-value": (
        {"inputs": [{**ONE, "data": [*ONE["data"][:-1], True]}]},
        "invalid input",
        f"row 0: feature {NAMES[-1]!r} expects a finite number, got True",
    ),
    "unknown-and-missing-features": (
        {"inputs": [{**ONE, "name": NAMES[0], "shape": [1]}, {**ONE, "shape": [1]}]},
        "invalid input",
        f"unknown feature(s) ['x']; expected {NAMES}",
    ),
    "a-feature-twice": (
        feature_tensors(ROWS)["inputs"] + feature_tensors(ROWS)["inputs"][:1],
        "input named more than once",
        repr(NAMES[0]),
    ),
    "feature-tensor-of-two-columns": (
        {"inputs": [{**t, "shape": [1, 3]} for t in feature_tensors(ROWS)["inputs"]]},
        "bad input tensor shape",
        "a feature's tensor is [N] or [N, 1]",
    ),
    "features-of-different-lengths": (
        {
            "inputs": [
                {**t, "shape": [3 - (i == 0)]}
                for i, t in enumerate(feature_tensors(ROWS)["inputs"])
            ]
        },
        "inputs must have the same number of rows",
        "",
    ),
}
BAD_INFER["a-feature-twice"] = (
    {"inputs": BAD_INFER["a-feature-twice"][0]},
    *BAD_INFER["a-feature-twice"][1:],
)


@pytest.mark.parametrize("member", list(BAD_INFER))
def test_bad_infer_requests_are_422_naming_the_problem(client: TestClient, member: str) -> None:
    body, error, detail = BAD_INFER[member]
    response = infer(client, body)
    assert response.status_code == 422, response.text
    assert response.json()["error"].startswith(error), response.text
    assert detail in str(response.json()["detail"])


def test_the_body_limit_and_media_type_hold_for_v2(client: TestClient) -> None:
    large = batch_tensor(ROWS * 1000)  # 3000 rows: past the fixture's 64 KiB MAX_BODY_BYTES
    too_large = infer(client, large)
    assert too_large.status_code == 413
    assert too_large.json()["error"] == "request body too large"
    url = f"/v2/models/{model_of(client).name}/infer"
    as_text = client.post(url, content=b"{}", headers={"Content-Type": "text/plain"})
    assert as_text.status_code == 415


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


MIXED = [
    Feature("n", "long"),
    Feature("flag", "boolean"),
    Feature("city", "string"),
    Feature("x", "float", required=False),
]


def tensor(name: str, datatype: str, data: list[Any]) -> dict[str, Any]:
    return {"name": name, "shape": [len(data)], "datatype": datatype, "data": data}


def test_each_feature_type_takes_its_datatype() -> None:
    reader = TensorReader(RowValidator(MIXED, 10), classes=None, probabilities=False)
    request = reader.read(
        {
            "inputs": [
                tensor("n", "INT64", [3, 4]),
                tensor("flag", "BOOL", [True, False]),
                tensor("city", "BYTES", ["paris", "lyon"]),
            ]
        }
    )
    assert request.rows == [[3, True, "paris", None], [4, False, "lyon", None]]
    assert request.outputs == ("predict",)
    unfit = bad(
        reader,
        {
            "inputs": [
                tensor("n", "BYTES", ["3"]),
                tensor("flag", "BOOL", [True]),
                tensor("city", "BYTES", ["a"]),
            ]
        },
    )
    assert unfit.endswith(
        "feature 'n' (long) takes FP64, FP32, FP16, INT64, INT32, INT16, "
        "INT8, UINT64, UINT32, UINT16, UINT8"
    )
    wrong_value = {"inputs": [tensor("n", "INT64", [1.5]), tensor("flag", "BOOL", [1]),
                              tensor("city", "BYTES", ["a"])]}  # fmt: skip
    assert bad(reader, wrong_value) == [
        "row 0: feature 'n' expects an integer, got 1.5",
        "row 0: feature 'flag' expects true or false, got 1",
    ]


def bad(reader: TensorReader, payload: Any) -> Any:
    with pytest.raises(ApiError) as caught:
        reader.read(payload)
    assert caught.value.status == 422
    return caught.value.detail


@pytest.mark.parametrize(
    ("classes", "datatype"),
    [([0, 1], "INT64"), (["no", "yes"], "BYTES"), ([False, True], "BOOL"), (None, "FP64")],
)
def test_the_label_datatype_follows_the_classes(classes: Any, datatype: str) -> None:
    assert label_datatype(classes) == datatype


def test_the_serving_docs_name_every_route() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "serving.md").read_text()
    for path in ENDPOINTS:
        unversioned = path.replace("/versions/{version}", "")
        assert f" {unversioned}`" in docs, path
    assert "also under `/versions/{version}`" in docs
