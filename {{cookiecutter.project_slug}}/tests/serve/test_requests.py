"""Request parsing and validation against the model signature, without HTTP (see test_app
and test_hostile_input for the checks on headers and body size)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from {{ cookiecutter.package_name }}.serve.errors import (
    ApiError,
)
from {{ cookiecutter.package_name }}.serve.features import (
    Feature,
)
from {{ cookiecutter.package_name }}.serve.requests import (
    MAX_REPORTED_PROBLEMS,
    RowValidator,
    parse_json,
)

DOUBLES = [Feature("a", "double"), Feature("b", "double")]
MIXED = [
    Feature("n", "long"),
    Feature("flag", "boolean"),
    Feature("city", "string"),
    Feature("x", "float", required=False),
]


def error_of(call: Any, *args: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call(*args)
    return caught.value


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_json_number_literals_are_rejected(literal: str) -> None:
    error = error_of(parse_json, ('{"instances": [[' + literal + ", 1]]}").encode())
    assert (error.status, error.error) == (400, "malformed JSON")
    assert literal in error.detail


@pytest.mark.parametrize(
    ("body", "detail"),
    [(b"", "send a JSON object"), (b"{", "Expecting"), (b'{"a": "\xff"}', "not UTF-8")],
    ids=["empty", "truncated", "binary"],
)
def test_bodies_that_are_not_json_are_400(body: bytes, detail: str) -> None:
    error = error_of(parse_json, body)
    assert error.status == 400
    assert detail in error.detail


def test_records_and_lists_become_rows_in_signature_order() -> None:
    validator = RowValidator(DOUBLES, max_batch_size=10)
    rows = validator.predict_rows({"instances": [{"b": 2.0, "a": 1}, [3, 4.5]]})
    assert rows == [[1, 2.0], [3, 4.5]]


@pytest.mark.parametrize(
    ("instance", "problem"),
    [
        ({"a": 1.0}, "missing feature 'b'"),
        ({"a": 1.0, "b": 2.0, "c": 3.0}, "unknown feature(s) ['c']"),
        ({"a": "1.0", "b": 2.0}, "feature 'a' expects a finite number, got '1.0'"),
        ({"a": True, "b": 2.0}, "feature 'a' expects a finite number, got True"),
        ({"a": None, "b": 2.0}, "feature 'a' expects a finite number, got None"),
        ({"a": 1e999, "b": 2.0}, "feature 'a' expects a finite number, got inf"),
        ({"a": 10**400, "b": 2.0}, "feature 'a' expects a finite number"),
        ([1.0], "expected 2 values in the order ['a', 'b'], got 1"),
        ("1.0,2.0", "expected an object of features or a list of 2 values, got str"),
    ],
    ids=["missing", "unknown", "string", "bool", "null", "overflow", "huge-int", "short", "str"],
)
def test_bad_instances_are_422_naming_row_and_feature(instance: Any, problem: str) -> None:
    validator = RowValidator(DOUBLES, max_batch_size=10)
    error = error_of(validator.predict_rows, {"instances": [{"a": 0.0, "b": 0.0}, instance]})
    assert (error.status, error.error) == (422, "invalid input")
    assert len(error.detail) == 1
    assert error.detail[0].startswith(f"row 1: {problem}")


def test_problem_list_is_capped() -> None:
    validator = RowValidator(DOUBLES, max_batch_size=100)
    error = error_of(validator.predict_rows, {"instances": [{"a": "x", "b": "y"}] * 50})
    assert len(error.detail) == MAX_REPORTED_PROBLEMS


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"instances": []}, "empty batch"),
        ({"instances": [[0.0, 0.0]] * 11}, "batch too large"),
        ({"instances": {"a": 1.0}}, "expected a list of instances"),
        ({"rows": [[0.0, 0.0]]}, "expected an object with one key, 'instances'"),
        ([[0.0, 0.0]], "expected an object with one key, 'instances'"),
    ],
    ids=["empty", "too-large", "not-a-list", "wrong-key", "not-an-object"],
)
def test_bad_batches_are_422(payload: Any, message: str) -> None:
    error = error_of(RowValidator(DOUBLES, max_batch_size=10).predict_rows, payload)
    assert (error.status, error.error) == (422, message)


def test_batch_limit_names_the_setting() -> None:
    error = error_of(RowValidator(DOUBLES, 3).predict_rows, {"instances": [[0, 0]] * 4})
    assert error.detail == "4 instances; MAX_BATCH_SIZE is 3"


def test_each_column_type_accepts_its_json_values() -> None:
    validator = RowValidator(MIXED, max_batch_size=10)
    rows = validator.rows(
        [
            {"n": 3, "flag": True, "city": "paris", "x": 0.5},
            {"n": 4.0, "flag": False, "city": "lyon", "x": None},
            {"n": 5, "flag": False, "city": "nice"},  # optional x left out
        ]
    )
    assert rows == [[3, True, "paris", 0.5], [4, False, "lyon", None], [5, False, "nice", None]]


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        ({"n": 1.5, "flag": True, "city": "a"}, "feature 'n' expects an integer, got 1.5"),
        ({"n": 1, "flag": 1, "city": "a"}, "feature 'flag' expects true or false, got 1"),
        ({"n": 1, "flag": True, "city": 7}, "feature 'city' expects a string, got 7"),
        ({"n": None, "flag": True, "city": "a"}, "feature 'n' expects an integer, got None"),
    ],
    ids=["fractional-long", "int-as-bool", "number-as-string", "null-required"],
)
def test_each_column_type_rejects_other_values(record: dict[str, Any], problem: str) -> None:
    error = error_of(RowValidator(MIXED, 10).rows, [record])
    assert error.detail == [f"row 0: {problem}"]


@pytest.mark.parametrize(
    "payload",
    [
        {"dataframe_split": {"columns": ["b", "a"], "data": [[2.0, 1.0], [4.0, 3.0]]}},
        {"dataframe_split": {"data": [[1.0, 2.0], [3.0, 4.0]]}},
        {"dataframe_records": [{"a": 1.0, "b": 2.0}, {"a": 3.0, "b": 4.0}]},
        {"instances": [{"a": 1.0, "b": 2.0}, {"a": 3.0, "b": 4.0}]},
        {"instances": [[1.0, 2.0], [3.0, 4.0]]},
        {"inputs": [{"a": 1.0, "b": 2.0}, {"a": 3.0, "b": 4.0}]},
        {"inputs": {"a": [1.0, 3.0], "b": [2.0, 4.0]}},
        {"inputs": {"a": [1.0, 3.0], "b": [2.0, 4.0]}, "params": {}},
    ],
    ids=[
        "split",
        "split-no-columns",
        "records",
        "instances",
        "instances-lists",
        "inputs",
        "inputs-columns",
        "empty-params",
    ],
)
def test_every_mlflow_scoring_format_gives_the_same_rows(payload: dict[str, Any]) -> None:
    assert RowValidator(DOUBLES, 10).invocation_rows(payload) == [[1.0, 2.0], [3.0, 4.0]]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([1, 2], "expected a JSON object"),
        ({"instances": [[1, 2]], "inputs": [[1, 2]]}, "expected exactly one of"),
        ({"data": [[1, 2]]}, "expected exactly one of"),
        ({"instances": [[1.0, 2.0]], "params": {"k": 1}}, "this model takes no params"),
        ({"dataframe_split": [[1, 2]]}, "dataframe_split needs 'columns' and 'data'"),
        ({"dataframe_split": {"columns": "a", "data": [[1, 2]]}}, "must be a list of names"),
        ({"dataframe_split": {"columns": ["a", "b"], "data": [[1]]}}, "bad row"),
        ({"inputs": {"a": [1.0], "b": [1.0, 2.0]}}, "columns must be lists of equal length"),
        ({"dataframe_records": []}, "empty batch"),
    ],
    ids=[
        "list",
        "two-formats",
        "unknown-format",
        "params",
        "split-not-object",
        "split-columns",
        "split-short-row",
        "ragged-columns",
        "empty",
    ],
)
def test_bad_invocations_are_422(payload: Any, message: str) -> None:
    error = error_of(RowValidator(DOUBLES, 10).invocation_rows, payload)
    assert error.status == 422
    assert message in error.error


@pytest.mark.parametrize(
    "body",
    [
        b'{"instances": [{"a": 1.5, "b": -2}]}',
        b'{"instances": [{"a:b": 1.0, "b": "x:y"}]}',  # colons inside strings
        b'{ "instances" : [ [1e-5, 2E3] ] , "k" : {"x" : null} }',
        b'{"instances": [{"caf\\u00e9": 1.0, "\\"q\\"": [true, false]}]}',  # escapes
        '{"instances": [{"café": 1.0}]}'.encode(),
        b"[" * 300 + b"]" * 300,  # deeper than orjson renders: the strict parser reads it
        b"[" * 900 + b"]" * 900,  # as deep as orjson reads, too deep for it to render
        b'{"a": [{"b": {"c": 1}}, [{"d": 2, "e": {}}]], "f": "t:10:00"}',
    ],
    ids=["plain", "colons", "whitespace", "escapes", "utf-8", "300-levels", "900-levels", "nested"],
)
def test_fast_parser_reads_what_the_strict_one_reads(body: bytes) -> None:
    assert parse_json(body) == json.loads(body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"instances": [{"a": 1, "a": 2}]}',
        b'{"a": {"b": 1}, "a": {"c": 2}}',
        b'{"instances": [{"a": 1, "a": "\\u003a"}]}',  # the dropped pair's colon, respelled
        b'{"instances": [{"a:": 1, "a:": 2}]}',
        b'{"instances": [{"a": 1, "a": 2, "t": "10:00"}]}',  # a string's colon fills the gap
    ],
    ids=["record", "nested", "escaped-colon", "colon-in-key", "colon-in-value"],
)
def test_duplicate_keys_are_refused_whichever_parser_reads_them(body: bytes) -> None:
    error = error_of(parse_json, body)
    assert (error.status, error.error) == (400, "malformed JSON")
    assert "duplicate key" in error.detail


@pytest.mark.parametrize(
    "instances",
    [
        [{"a": 1.0, "b": 2}, {"b": 4.5, "a": -3}],
        [[1.0, 2], [3, 4.5]],
        [[1e308, 1e308]],  # each finite though their sum is not
        [[2**1023, 0.0]],
        [{"a": 1.0, "b": 2.0}, [3.0, 4.0]],  # records and lists mixed
    ],
    ids=["records", "lists", "near-overflow", "huge-int", "mixed"],
)
def test_whole_batch_check_agrees_with_the_per_row_checks(instances: list[Any]) -> None:
    batch = RowValidator(DOUBLES, 10).rows(instances)
    one_by_one = [RowValidator(DOUBLES, 10).rows([instance])[0] for instance in instances]
    assert batch == one_by_one


def test_one_feature_records_take_the_batch_check() -> None:
    validator = RowValidator([Feature("a", "double")], 10)
    assert validator.rows([{"a": 1.0}, {"a": 2}]) == [[1.0], [2]]
    error = error_of(validator.rows, [{"a": 1.0}, {"b": 2.0}])
    assert error.detail == [
        "row 1: unknown feature(s) ['b']; expected ['a']",
        "row 1: missing feature 'a'",
    ]
