"""The request bodies in /openapi.json, with every feature of the loaded model by name and type:
/predict, /invocations and the V2 infer routes (v2.py).

The routes read their bodies themselves (requests.py checks them), so FastAPI knows no model
for them: their schemas are built here from the signature once the model is loaded, and /docs
then shows a client what to send. Until then the generic shape of each body is shown.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI

from .features import NUMERIC_TYPES, Feature
from .model import ServedModel
from .requests import INVOCATION_KEYS
from .tensors import BATCH_INPUT, DATATYPES, FEATURE_DATATYPE, TAKES, TENSOR_KEYS, outputs_of
from .v2 import INFER, INFER_VERSION

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


def infer_schema(features: Sequence[Feature], outputs: Sequence[str]) -> dict[str, Any]:
    """The V2 infer body: one [N, F] tensor of every feature in order, or one per feature."""
    names = [f.name for f in features]
    per_feature = [
        _tensor(
            {"const": f.name},
            TAKES[f.type],
            {"type": "array", "items": {"type": "integer", "minimum": 0}, "maxItems": 2},
            {"type": "array", "items": _value(f)},
        )
        for f in features
    ]
    inputs: list[dict[str, Any]] = [
        {"type": "array", "title": "One tensor per feature", "items": {"oneOf": per_feature}}
    ]
    shared = [kind for kind in sorted(DATATYPES) if all(kind in TAKES[f.type] for f in features)]
    if shared:  # a datatype every feature takes: all of them in one tensor
        shape = {
            "type": "array",
            "prefixItems": [{"type": "integer", "minimum": 1}, {"const": len(features)}],
            "minItems": 2,
            "maxItems": 2,
        }
        batch = _tensor(
            {"type": "string", "not": {"enum": names}}, shared, shape, {"type": "array"}
        )
        inputs.insert(
            0, {"type": "array", "title": "One [N, F] tensor", "maxItems": 1, "items": batch}
        )
    requested = {"type": "object", "required": ["name"], "properties": {"name": {"enum": outputs}}}
    return {
        "type": "object",
        "required": ["inputs"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string"},
            "parameters": {"type": "object"},
            "inputs": {"oneOf": [{**option, "minItems": 1} for option in inputs]},
            "outputs": {"type": "array", "minItems": 1, "items": requested},
        },
    }


def infer_example(features: Sequence[Feature], example: dict[str, Any]) -> dict[str, Any]:
    """The model's example row as a V2 infer body: one [1, F] tensor if every feature is a
    number, else one tensor per feature."""
    names = [f.name for f in features]
    if all(f.type in NUMERIC_TYPES for f in features) and BATCH_INPUT not in names:
        values = [example.get(name) for name in names]
        return {
            "inputs": [
                {"name": BATCH_INPUT, "shape": [1, len(names)], "datatype": "FP64", "data": values}
            ]
        }
    return {
        "inputs": [
            {
                "name": f.name,
                "shape": [1],
                "datatype": FEATURE_DATATYPE[f.type],
                "data": [example.get(f.name)],
            }
            for f in features
        ]
    }


def _tensor(
    name: dict[str, Any], datatypes: Sequence[str], shape: dict[str, Any], data: dict[str, Any]
) -> dict[str, Any]:
    schemas = {"name": name, "shape": shape, "datatype": {"enum": list(datatypes)}, "data": data}
    return {
        "type": "object",
        "required": list(TENSOR_KEYS),
        "properties": {**schemas, "parameters": {"type": "object"}},
        "additionalProperties": False,
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
        generic_infer = {"type": "object", "required": ["inputs"]}
        bodies = {"/predict": instances_schema(), "/invocations": {}, INFER: generic_infer}
        examples: dict[str, Any] = {}
        if model is not None:
            outputs = list(outputs_of(model.classes, model.has_proba))
            bodies = {
                "/predict": instances_schema(rows_schema(model.features)),
                "/invocations": invocations_schema(model.features),
                INFER: infer_schema(model.features, outputs),
            }
            if model.example:
                rows = {"instances": [model.example]}
                v2 = infer_example(model.features, model.example)
                examples = {"/predict": rows, "/invocations": rows, INFER: v2}
        bodies[INFER_VERSION] = bodies[INFER]
        examples.update({INFER_VERSION: examples[INFER]} if INFER in examples else {})
        for path, body in bodies.items():
            content = schema["paths"][path]["post"]["requestBody"]["content"]["application/json"]
            content["schema"] = body
            if path in examples:
                content["example"] = examples[path]
        if model is not None:
            final = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
