"""The request body as strict JSON, without HTTP: what the fast parser reads, what it refuses."""

from __future__ import annotations

import json

import pytest

from {{ cookiecutter.package_name }}.serve.body import (
    SMALL_BODY,
    parse_json,
)

from .test_requests import error_of

# Many records (counted whole, not value by value) and a V2 tensor, as clients send them.
RECORDS = b'{"instances": [' + b", ".join([b'{"a": 1.0, "b": 2.5}'] * 20) + b"]}"

V2_TENSOR = b'{"inputs": [{"name": "t", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}]}'


def large(body: bytes) -> bytes:
    """`body` past SMALL_BODY (trailing whitespace is JSON): the size a cheaper proof takes."""
    return body + b" " * SMALL_BODY


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
        large(RECORDS),
        large(b'{"instances": [' + b", ".join([b'{"a": {"b": {"c": [{"d": 1}]}}}'] * 12) + b"]}"),
        large(V2_TENSOR),
        large(b'{"instances": [{"a:b": 1.0, "b": "x:y"}]}'),
    ],
    ids=[
        "plain",
        "colons",
        "whitespace",
        "escapes",
        "utf-8",
        "300-levels",
        "900-levels",
        "nested",
        "records",
        "records-nesting",
        "v2-tensor",
        "large-colons",
    ],
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
        large(RECORDS.replace(b'"b": 2.5}', b'"b": 2.5, "a": 3}', 1)),  # one of many records
        large(RECORDS[:-2] + b', {"a": {"b": 1, "b": 2}}]}'),  # nested in one of many records
        large(V2_TENSOR.replace(b'"datatype"', b'"name": "x", "datatype"')),  # in a tensor
        large(b'{"inputs": [' + b'{"p": {"q": 1, "q": 2}}, ' * 3 + b"{}]}"),  # few objects
        large(b'{"instances": [{"a": 1, "a": 2, "t": "10:00"}]}'),
    ],
    ids=[
        "record",
        "nested",
        "escaped-colon",
        "colon-in-key",
        "colon-in-value",
        "many-records",
        "in-a-record",
        "v2-tensor",
        "few-objects",
        "large-colon-in-value",
    ],
)
def test_duplicate_keys_are_refused_whichever_parser_reads_them(body: bytes) -> None:
    error = error_of(parse_json, body)
    assert (error.status, error.error) == (400, "malformed JSON")
    assert "duplicate key" in error.detail
