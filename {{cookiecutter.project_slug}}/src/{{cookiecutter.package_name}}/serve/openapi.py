"""The request bodies in /openapi.json, with every feature of the loaded model by name and type.

The routes read their bodies themselves (requests.py checks them), so FastAPI knows no model
for them: their schemas are built here from the signature once the model is loaded, and /docs
then shows a client what to send. Until then the generic shape of each body is shown.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI

from .features import Feature
from .model import ServedModel
from .requests import INVOCATION_KEYS

# MLflow column types as JSON Schema types (a long is any integer, a float any number).
JSON_TYPES = {
    "double": "number",
    "float": "number",
    "long": "integer",
    "integer": "integer",
    "boolean": "boolean",
    "string": "string",
}
GENERIC_ROWS = {
    "type": "array",
    "items": {"oneOf": [{"type": "object"}, {"type": "array"}]},
    "description": "Rows as {feature: value} objects, or lists in feature order "
    "(see GET /metadata).",
}


def instances_schema(rows: dict[str, Any] = GENERIC_ROWS) -> dict[str, Any]:
    """The /predict body: `{"instances": rows}`."""
    return {"type": "object", "required": ["instances"], "properties": {"instances": rows}}


def rows_schema(features: Sequence[Feature]) -> dict[str, Any]:
    """A batch of rows: each a record naming the features, or a list of them in order."""
    record = {
        "type": "object",
        "title": "Record",
        "properties": {f.name: _value(f) for f in features},
        "required": [f.name for f in features if f.required],
        "additionalProperties": False,
    }
    in_order = {
        "type": "array",
        "title": "Values in feature order",
        "prefixItems": [_value(f) for f in features],
        "minItems": len(features),
        "maxItems": len(features),
    }
    return {"type": "array", "minItems": 1, "items": {"oneOf": [record, in_order]}}


def invocations_schema(features: Sequence[Feature]) -> dict[str, Any]:
    """MLflow's scoring protocol: one of its four keys, each holding the same rows."""
    rows = rows_schema(features)
    split = {
        "type": "object",
        "required": ["data"],
        "properties": {
            "columns": {"type": "array", "items": {"enum": [f.name for f in features]}},
            "data": {"type": "array", "minItems": 1, "items": {"type": "array"}},
        },
    }
    columns = {
        "type": "object",
        "properties": {f.name: {"type": "array", "items": _value(f)} for f in features},
    }
    formats = {
        "dataframe_split": split,
        "dataframe_records": rows,
        "instances": rows,
        "inputs": {"oneOf": [rows, columns]},
    }
    return {
        "oneOf": [
            {"type": "object", "required": [key], "properties": {key: formats[key]}}
            for key in INVOCATION_KEYS
        ]
    }


def _value(feature: Feature) -> dict[str, Any]:
    kind = JSON_TYPES[feature.type]
    return {"type": [kind, "null"] if feature.nullable else kind}


def install(app: FastAPI, served: Callable[[], ServedModel | None]) -> None:
    """Serve /openapi.json with the bodies of the model `served()` returns, once it has one."""
    final: dict[str, Any] | None = None

    def openapi() -> dict[str, Any]:
        nonlocal final
        if final is not None:  # the model does not change while the process runs
            return final
        app.openapi_schema = None  # FastAPI's builder caches there: build afresh until final
        schema = FastAPI.openapi(app)
        model = served()
        bodies = {"/predict": instances_schema(), "/invocations": {}}
        if model is not None:
            bodies = {
                "/predict": instances_schema(rows_schema(model.features)),
                "/invocations": invocations_schema(model.features),
            }
        for path, body in bodies.items():
            content = schema["paths"][path]["post"]["requestBody"]["content"]["application/json"]
            content["schema"] = body
            if model is not None and model.example:
                content["example"] = {"instances": [model.example]}
        if model is not None:
            final = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
