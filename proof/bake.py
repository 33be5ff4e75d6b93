"""What the template's proof reads of a bake from outside: its images and the tags they get.

A re-derivation of the bake's own rule (its tools/project.py): the template never imports a
bake's modules, so a project may change them without breaking the template's suite.
"""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path


def images(project: Path) -> list[str]:
    """The serving image and the training image (`[tool.mlops] image`, then `-train`)."""
    table = tomllib.loads((project / "pyproject.toml").read_text())["tool"]["mlops"]
    return [table["image"], f"{table['image']}-train"]


def image_ref(project: Path, image: str) -> str:
    """`image` as the bake's `nox -s build` tags it for HEAD: `sha-<7-char SHA>`, as CI does."""
    sha = subprocess.run(
        ["git", "rev-parse", "--short=7", "HEAD"],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return f"{image}:sha-{sha}"


def image_options(project: Path) -> list[str]:
    """`--image NAME=REF` for each image, as proof/rehearsal.py takes them."""
    return [f"--image={image}={image_ref(project, image)}" for image in images(project)]
