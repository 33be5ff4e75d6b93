"""benchmarks/peers.py's check before any timing: every server answers the same rows (the bake's
MLflow input example and its ONNX twin's reference rows) with the labels ours gives.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import peers_protocols as protocols
from peers_protocols import Contender


def check_rows(model_dir: Path) -> tuple[list[str], list[list[Any]]]:
    """The rows every server must agree on: the MLflow input example the bake saved and, when
    it has an ONNX twin, the twin's reference rows."""
    example = json.loads((model_dir / "input_example.json").read_text())
    rows = [list(row) for row in example["data"]]
    reference = model_dir / "onnx_reference.json"
    if reference.is_file():
        rows += [list(row) for row in json.loads(reference.read_text())["inputs"]]
    return list(example["columns"]), rows


def request(url: str, body: bytes | None = None) -> Any:
    """The JSON answer of a GET (or a POST of `body`); an HTTP error's body raises as text."""
    sent = urllib.request.Request(url, body, {"Content-Type": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(sent, timeout=30) as response:  # noqa: S310 (127.0.0.1)
            return json.load(response)
    except urllib.error.HTTPError as error:
        raise RuntimeError(f"{url}: {error.code} {error.read()[:500]!r}") from None


def answer(contender: Contender, base: str, columns: list[str], rows: list[Any]) -> list[Any] | str:
    """The labels a server gives the rows, or why it gave none."""
    try:
        return contender.labels(request(base + contender.path, contender.body(columns, rows)))
    except (OSError, RuntimeError, LookupError, TypeError, ValueError) as error:
        return f"no answer ({error})"


def disagreements(
    bases: dict[str, str], contenders: Sequence[Contender], columns: list[str], rows: list[Any]
) -> list[str]:
    """Each server that answers the rows with labels other than ours, or none: why."""
    answers = {
        c.name: answer(c, bases[c.name], columns, rows)
        for c in contenders
        if c.name != protocols.CEILING
    }
    ours = answers.pop(protocols.OURS)
    if isinstance(ours, str):
        return [f"{protocols.OURS}: {ours}"]
    return [
        f"{name}: {theirs if isinstance(theirs, str) else why}"
        for name, theirs in answers.items()
        if isinstance(theirs, str) or (why := protocols.disagreement(ours, theirs)) is not None
    ]
