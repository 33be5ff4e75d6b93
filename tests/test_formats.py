"""Each per-format escape keeps the answer's exact text in its format (hooks/formats.py)."""

from __future__ import annotations

import ast
import html
import re
import tomllib

import pytest
from markdown_it import MarkdownIt

from hooks import formats
from tests.test_validation import HOSTILE_TEXT

TEXTS = [*HOSTILE_TEXT, "plain", "trailing \\", "\\", '"', "", "1) x", "- x", "+", "=== x", "x #"]


@pytest.mark.parametrize("text", TEXTS)
def test_toml_str_reads_back_as_the_answer(text: str) -> None:
    assert tomllib.loads(f"key = {formats.toml_str(text)}")["key"] == text


@pytest.mark.parametrize("text", TEXTS)
def test_py_str_reads_back_as_the_answer(text: str) -> None:
    assert ast.literal_eval(formats.py_str(text)) == text


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("block", ["# {}", "{}"], ids=["heading", "paragraph"])
def test_md_renders_as_the_literal_text(text: str, block: str) -> None:
    rendered = MarkdownIt("commonmark").render(block.format(formats.md(text)))
    tags = re.findall(r"<(\w+)", rendered)
    assert set(tags) <= {"h1", "p"}, rendered  # no emphasis, code, link, list or HTML
    assert html.unescape(re.sub(r"<[^>]+>", "", rendered)).strip() == text.strip()


def test_md_leaves_plain_sentences_alone() -> None:
    sentence = "A scikit-learn model, served over HTTP (on Kubernetes)."
    assert formats.md(sentence) == sentence


@pytest.mark.parametrize("text", TEXTS)
def test_docker_label_escapes_what_the_dockerfile_parser_reads(text: str) -> None:
    # The value as Docker reads a double-quoted word: `\` escapes `"`, `$` and `\`.
    literal = formats.docker_label(text)
    assert literal.startswith('"')
    assert literal.endswith('"')
    assert re.sub(r'\\(["$\\])', r"\1", literal[1:-1]) == text
    assert re.search(r'(?<!\\)(\\\\)*["$]', literal[1:-1]) is None, "an unescaped quote or $"
