"""Rows from parsed request bodies, checked against the model signature, without HTTP (see
test_body for the parsing, test_app and test_hostile_input for headers and body size)."""

from __future__ import annotations

from typing import Any

import numpy as np
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
)

DOUBLES = [Feature("a", "double"), Feature("b", "double")]
MIXED = [
    Feature("n", "long"),
    Feature("flag", "boolean"),
    Feature("city", "string"),
    Feature("x", "float", required=False),
]


def listed(rows: Any) -> list[list[Any]]:
    """Checked rows as lists, whether they came as one float array or as lists."""
    return rows.tolist() if isinstance(rows, np.ndarray) else list(rows)


def error_of(call: Any, *args: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call(*args)
    return caught.value


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
    rows = RowValidator(DOUBLES, 10).invocation_rows(payload)
    assert listed(rows) == [[1.0, 2.0], [3.0, 4.0]]


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
def test_whole_batch_check_agrees_with_the_per_value_checks(instances: list[Any]) -> None:
    validator = RowValidator(DOUBLES, 10)
    assert listed(validator.rows(instances)) == validator.value_by_value(instances)


@pytest.mark.parametrize(
    ("last", "problem"),
    [
        ([True, 2.5], "row 200: feature 'a' expects a finite number, got True"),
        ([1.0, False], "row 200: feature 'b' expects a finite number, got False"),
    ],
    ids=["true-among-ones", "false-among-zeros"],
)
def test_a_bool_among_ones_and_zeros_is_named(last: list[Any], problem: str) -> None:
    # A batch this size is packed whole, where a bool is 1.0 or 0.0: it must still be named.
    instances = [[1.0, 0.0], [0, 1]] * 100 + [last]
    error = error_of(RowValidator(DOUBLES, 1000).rows, instances)
    assert problem in error.detail


def test_one_feature_records_take_the_batch_check() -> None:
    validator = RowValidator([Feature("a", "double")], 10)
    assert listed(validator.rows([{"a": 1.0}, {"a": 2}])) == [[1.0], [2]]
    error = error_of(validator.rows, [{"a": 1.0}, {"b": 2.0}])
    assert error.detail == [
        "row 1: unknown feature(s) ['b']; expected ['a']",
        "row 1: missing feature 'a'",
    ]


@pytest.mark.parametrize(
    ("call", "payload"),
    [
        ("predict_rows", {"instances": [{"b": 2.0, "a": 1}, {"a": 3.0, "b": 4}]}),
        ("predict_rows", {"instances": [[1, 2.0], [3.0, 4]]}),
        ("invocation_rows", {"dataframe_split": {"columns": ["b", "a"], "data": [[2, 1], [4, 3]]}}),
        ("invocation_rows", {"inputs": {"b": [2.0, 4.0], "a": [1.0, 3.0]}}),
    ],
    ids=["records", "lists", "split-reordered", "columns"],
)
def test_a_batch_of_numbers_becomes_one_contiguous_float_array(call: str, payload: Any) -> None:
    rows = getattr(RowValidator(DOUBLES, 10), call)(payload)
    assert isinstance(rows, np.ndarray)
    assert rows.dtype == np.float64
    assert rows.flags["C_CONTIGUOUS"]
    assert rows.tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_a_null_is_nan_in_the_batch_only_where_the_feature_takes_it() -> None:
    validator = RowValidator([Feature("a", "double", nullable=True), Feature("b", "double")], 10)
    for rows in (
        validator.rows([[None, 1.0], [4, 5]]),
        validator.rows([{"a": None, "b": 1.0}, {"b": 5, "a": 4}]),
        validator.invocation_rows({"inputs": {"a": [None, 4], "b": [1.0, 5]}}),
    ):
        assert isinstance(rows, np.ndarray)
        assert np.isnan(rows[0][0])
        assert rows[:, 1].tolist() == [1.0, 5.0]
    error = error_of(validator.rows, [[1.0, 2.0], [1.0, None]])
    assert error.detail == ["row 1: feature 'b' expects a finite number, got None"]


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ([3, 4.0], None),
        ([-(2**63) + 1, 2**31 - 1], None),
        ([1.5, 1], "row 0: feature 'n' expects an integer, got 1.5"),
        ([2**63, 1], f"row 0: feature 'n' expects an integer, got {2**63}"),
        ([1, -(2**31)], f"row 0: feature 'k' expects an integer, got {-(2**31)}"),
        ([1, 1e300], "row 0: feature 'k' expects an integer, got 1e+300"),
    ],
    ids=["whole", "bounds", "fraction", "past-long", "past-integer", "huge-float"],
)
def test_integer_features_take_whole_numbers_within_their_width(
    row: list[Any], problem: str | None
) -> None:
    validator = RowValidator([Feature("n", "long"), Feature("k", "integer")], 10)
    if problem is None:
        assert listed(validator.rows([row])) == [row]
    else:
        assert error_of(validator.rows, [row]).detail == [problem]


def test_an_int_is_a_number_up_to_the_largest_double() -> None:
    validator = RowValidator(DOUBLES, 10)
    assert listed(validator.rows([[2**1023, 2**1024 - 2**971]])) == [
        [float(2**1023), float(2**1024 - 2**971)]
    ]
    error = error_of(validator.rows, [[2**1024, 0.0]])
    assert error.detail[0].startswith("row 0: feature 'a' expects a finite number, got 1797")
