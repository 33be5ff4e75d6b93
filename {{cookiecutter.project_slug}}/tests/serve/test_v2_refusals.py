"""V2 infer requests the server refuses, each a 4xx naming the problem as the other endpoints
do, and the tensors of each feature type (tensors.py, without HTTP)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from {{ cookiecutter.package_name }}.serve.errors import (
    ApiError,
)
from {{ cookiecutter.package_name }}.serve.features import (
    Feature,
)
from {{ cookiecutter.package_name }}.serve.requests import (
    RowValidator,
)
from {{ cookiecutter.package_name }}.serve.tensors import (
    TensorReader,
    label_datatype,
)

from .test_hostile_input import ROW, post
from .test_v2 import NAMES, ROWS, batch_tensor, feature_tensors, infer, model_of

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


def v2_body(**tensor: Any) -> bytes:
    """One V2 tensor of the exported model's row, with `tensor`'s keys replaced."""
    fields = {"name": "x", "shape": [1, len(ROW)], "datatype": "FP64", "data": ROW, **tensor}
    return json.dumps({"inputs": [fields]}).encode()


# What only the V2 route reads: sizes, names and nesting a client makes up. Each member:
# (path under /v2/models/, body, status, error); every answer is small.
V2_CLASS: dict[str, tuple[str, bytes, int, str]] = {
    "20k-character-tensor-name": (
        "{name}/infer",
        v2_body(name="x" * 20_000, shape=[1, 29]),
        422,
        "bad input tensor shape",
    ),
    "20k-character-feature-name-twice": (
        "{name}/infer",
        json.dumps(
            {"inputs": [{**json.loads(v2_body())["inputs"][0], "name": "y" * 20_000}] * 2}
        ).encode(),
        422,
        "input named more than once",
    ),
    "15k-dimensions": ("{name}/infer", v2_body(shape=[1] * 15_000), 422, "bad input"),
    "data-nested-900-deep": (
        "{name}/infer",
        v2_body(data=[]).replace(b"[]}]}", b"[" * 900 + b"1.0" + b"]" * 900 + b"}]}"),
        422,
        "tensor data does not match its shape",
    ),
    "largest-uint64-rows": ("{name}/infer", v2_body(shape=[2**64 - 1, len(ROW)]), 422, "batch too"),
    "50k-character-model-name": ("n" * 50_000 + "/infer", v2_body(), 404, "unknown model"),
    "50k-character-version": ("{name}/versions/" + "9" * 50_000, b"", 404, "unknown model"),
}


@pytest.mark.parametrize("member", list(V2_CLASS))
def test_made_up_v2_sizes_names_and_nesting_are_a_short_4xx(
    client: TestClient, member: str
) -> None:
    path, body, status, error = V2_CLASS[member]
    model = client.app.state.serving.model  # type: ignore[attr-defined]
    path = "/v2/models/" + path.replace("{name}", model.name)
    response = post(client, path, body) if body else client.get(path)
    assert response.status_code == status, response.text[:500]
    assert response.json()["error"].startswith(error)
    assert len(response.content) < 1000
