"""The project's names and image tag rule, as nox, tools/ and tests read them.

The names live in pyproject.toml's `[tool.mlops]` table (kustomize's home for them is
k8s/components/project, the workflow's the top `env:` of delivery.yml). Only the standard
library: the noxfile imports this from nox's own environment.
"""

from __future__ import annotations

import os
import subprocess
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
# CI's docker/metadata-action `type=sha` tag: `sha-` and the 7-character short SHA.
TAG_PREFIX = "sha-"
SHORT_SHA = 7


@dataclass(frozen=True)
class Names:
    """Every name the project is known by outside Python (see `[tool.mlops]`)."""

    image: str  # the serving image; the training image adds `-train`
    registry: str  # where `nox -s push` and CI push; the REGISTRY variable wins
    namespace: str  # the Kubernetes namespace of every overlay
    deployment: str  # the serving Deployment, its Service, the part-of label, the kind cluster
    model: str  # the registered model the exported champion comes from

    @property
    def train_image(self) -> str:
        return f"{self.image}-train"

    @property
    def dockerfiles(self) -> dict[str, str]:
        """Each image, serving first, and the Dockerfile that builds it."""
        return {self.image: "Dockerfile", self.train_image: "Dockerfile.train"}


@cache
def names() -> Names:
    """The `[tool.mlops]` table of pyproject.toml."""
    with PYPROJECT.open("rb") as file:
        table = tomllib.load(file)["tool"]["mlops"]
    return Names(**{key: str(value) for key, value in table.items()})


def version() -> str:
    with PYPROJECT.open("rb") as file:
        return str(tomllib.load(file)["project"]["version"])


def registry() -> str:
    """The registry to push to: REGISTRY from the environment, else `[tool.mlops] registry`."""
    return os.environ.get("REGISTRY") or names().registry


def run(*args: str) -> None:
    """Run a command in the project, echoing it first; raise CalledProcessError if it fails."""
    print("+", " ".join(args), flush=True)
    subprocess.run(args, cwd=ROOT, check=True)  # noqa: S603 - our tools, our arguments


def git(*args: str) -> str | None:
    """A git command's output in the project, or None outside a checkout."""
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True)  # noqa: S603, S607
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip()


def image_tag() -> str:
    """`sha-<short SHA of HEAD>`, as CI tags the same commit; `dev` outside a git checkout."""
    sha = git("rev-parse", f"--short={SHORT_SHA}", "HEAD")
    return f"{TAG_PREFIX}{sha}" if sha else "dev"


def image_ref(image: str) -> str:
    """The local reference of `image` for the current commit."""
    return f"{image}:{image_tag()}"


def unbuilt(refs: Sequence[str]) -> str | None:
    """What to do when the local Docker engine lacks one of `refs`; None when it has them all."""
    for ref in refs:
        inspect = ["docker", "image", "inspect", ref]
        if subprocess.run(inspect, capture_output=True, check=False).returncode:  # noqa: S603
            return f"image {ref} not found: build it for this commit with `nox -s build`"
    return None
