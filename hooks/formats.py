"""Write a free-text answer into each file format it lands in, meaning exactly the answer.

Answers reaching these have passed hooks/validation.py: one line, no control characters,
no Jinja. What is left (quotes, backslashes, `$`, `#`, `*`, `<`, ...) is escaped here,
one function per format, each returning the whole literal (quotes included) or text to
paste. Jinja filters of the same names use them (hooks.validation.AnswerRules).
"""

from __future__ import annotations

import json
import re

# Markdown characters that could start emphasis, code, a link, HTML, an entity, a table
# cell, strikethrough, GitHub math or an emoji shortcode, anywhere on the line.
MARKDOWN_INLINE = re.compile(r"([\\`*_\[\]<>&|~$:#!])")
# At the start of a line: list items, block quotes, setext underlines, ordered lists.
MARKDOWN_LEADING = re.compile(r"^([-+=>]|\d+(?=[.)]))")


def toml_str(value: str) -> str:
    """A TOML basic string: JSON's escapes (\\", \\\\, \\n, \\uXXXX) are all valid TOML."""
    return json.dumps(value, ensure_ascii=False)


def docker_label(value: str) -> str:
    """A double-quoted Dockerfile word: `\\`, `"` and `$` (variable expansion) escaped."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def py_str(value: str) -> str:
    """A Python string literal."""
    return repr(value)


def md(value: str) -> str:
    """Markdown (CommonMark and GitHub) that renders as the literal text, trimmed."""
    text = MARKDOWN_INLINE.sub(r"\\\1", value.strip())
    leading = MARKDOWN_LEADING.match(text)
    if leading and leading.group(1).isdigit():  # "1. x" is a list: escape its '.' or ')'
        end = leading.end()
        return f"{text[:end]}\\{text[end:]}"
    return MARKDOWN_LEADING.sub(r"\\\1", text, count=1)


FILTERS = {"toml_str": toml_str, "docker_label": docker_label, "py_str": py_str, "md": md}
