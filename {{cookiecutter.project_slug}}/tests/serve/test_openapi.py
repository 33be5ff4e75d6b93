"""/openapi.json names every feature of the loaded model, so /docs shows a client what to send."""

from __future__ import annotations

import threading
from typing import Any

from fastapi.testclient import TestClient

from {{ cookiecutter.package_name }}.config import (
    ServeSettings,
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
from {{ cookiecutter.package_name }}.serve.openapi import (
    rows_schema,
)


def body_schema(client: TestClient, path: str) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    content = response.json()["paths"][path]["post"]["requestBody"]["content"]
    return dict(content["application/json"])


def test_predict_names_every_feature_with_its_type(client: TestClient) -> None:
    served: ServedModel = client.app.state.serving.model  # type: ignore[attr-defined]
    body = body_schema(client, "/predict")
    record, in_order = body["schema"]["properties"]["instances"]["items"]["oneOf"]
    assert record["properties"] == {
        f.name: {"type": ["number", "null"] if f.nullable else "number"}  # all doubles
        for f in served.features
    }
    assert record["required"] == served.names
    assert record["additionalProperties"] is False
    assert len(in_order["prefixItems"]) == in_order["minItems"] == in_order["maxItems"]
    assert body["example"] == {"instances": [served.example]}
    # The example the page shows is one the server takes.
    assert client.post("/predict", json=body["example"]).status_code == 200


def test_invocations_offer_each_mlflow_format_with_the_features(client: TestClient) -> None:
    served: ServedModel = client.app.state.serving.model  # type: ignore[attr-defined]
    formats = {
        key: option["properties"][key]
        for option in body_schema(client, "/invocations")["schema"]["oneOf"]
        for key in option["required"]
    }
    assert list(formats) == ["dataframe_split", "dataframe_records", "instances", "inputs"]
    assert formats["dataframe_split"]["properties"]["columns"]["items"]["enum"] == served.names
    assert formats["dataframe_records"] == formats["instances"]
    records, columns = formats["inputs"]["oneOf"]
    assert records == formats["instances"]
    assert list(columns["properties"]) == served.names


def test_each_column_type_and_nullability_maps_to_json_schema() -> None:
    features = [
        Feature("n", "long"),
        Feature("flag", "boolean"),
        Feature("city", "string"),
        Feature("x", "float", required=False),
        Feature("y", "double", nullable=True),
    ]
    record = rows_schema(features)["items"]["oneOf"][0]
    types = {name: value["type"] for name, value in record["properties"].items()}
    assert types == {
        "n": "integer",
        "flag": "boolean",
        "city": "string",
        "x": ["number", "null"],
        "y": ["number", "null"],
    }
    assert record["required"] == ["n", "flag", "city", "y"]  # x may be left out


def test_before_the_model_loads_the_generic_shape_is_shown(
    settings: ServeSettings, served_model: ServedModel
) -> None:
    loading = threading.Event()

    def slow_loader(_: str) -> ServedModel:
        loading.wait(timeout=60)
        return served_model

    with TestClient(create_app(settings, loader=slow_loader)) as client:
        generic = body_schema(client, "/predict")["schema"]["properties"]["instances"]
        assert generic["items"]["oneOf"] == [{"type": "object"}, {"type": "array"}]
        loading.set()
        for _ in range(200):
            if client.get("/readyz").status_code == 200:
                break
            threading.Event().wait(0.05)
        named = body_schema(client, "/predict")["schema"]["properties"]["instances"]
        assert list(named["items"]["oneOf"][0]["properties"]) == served_model.names
