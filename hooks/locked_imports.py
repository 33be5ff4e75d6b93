"""Top-level import names of the generated project's locked dependencies.

A package named like one of them (`numpy`, `yaml`, `sklearn`) would shadow it, so
hooks/validation.py refuses those names. The names come from each distribution's RECORD
(what it actually installs: scikit-learn installs `sklearn`, pyyaml `yaml`), which only an
installed environment has, so they are generated into locked_imports.json rather than
computed at bake time; tests/test_validation.py fails when uv.lock and the list disagree.

Regenerate (the root `nox -s relock` does it after re-locking):

    python hooks/locked_imports.py PROJECT  # a bake after `uv sync --all-extras --all-groups`
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from email.parser import HeaderParser
from pathlib import Path

LIST = Path(__file__).with_name("locked_imports.json")


def normalize(distribution: str) -> str:
    """PEP 503 name, as uv.lock spells packages."""
    return re.sub(r"[-_.]+", "-", distribution).lower()


def load() -> dict[str, list[str]]:
    """Distribution name -> the top-level names it installs."""
    loaded: dict[str, list[str]] = json.loads(LIST.read_text(encoding="utf-8"))
    return loaded


def owner_of(module: str) -> str | None:
    """The locked distribution installing `module`, if any."""
    return next((dist for dist, names in load().items() if module in names), None)


def locked_packages(lock: Path) -> set[str]:
    """Every package in a uv.lock except the project's own (the one without a registry)."""
    packages = tomllib.loads(lock.read_text(encoding="utf-8"))["package"]
    return {p["name"] for p in packages if "registry" in p.get("source", {})}


def top_level_names(record: str) -> set[str]:
    """Importable top-level names in a RECORD: packages, modules and extension modules."""
    names = set()
    for line in record.splitlines():
        first = line.split(",", 1)[0].split("/", 1)
        top = first[0]
        if len(first) == 1:  # a file at the top: module.py or module.cpython-313-....so
            top = top.split(".", 1)[0] if top.endswith((".py", ".so", ".pyd")) else ""
        if top.isidentifier():
            names.add(top)
    return names


def installed(site_packages: Path) -> dict[str, set[str]]:
    found = {}
    for info in site_packages.glob("*.dist-info"):
        metadata = HeaderParser().parsestr((info / "METADATA").read_text(encoding="utf-8"))
        found[normalize(metadata["Name"])] = top_level_names((info / "RECORD").read_text())
    return found


def generate(project: Path) -> dict[str, list[str]]:
    """Names from `project`'s synced .venv; a package not installed here (Windows-only
    ones such as pywin32) is listed under its own name, the usual import name."""
    (site_packages,) = project.glob(".venv/lib/python*/site-packages")
    on_disk = installed(site_packages)
    return {
        dist: sorted(on_disk.get(dist) or {dist.replace("-", "_")})
        for dist in sorted(locked_packages(project / "uv.lock"))
    }


if __name__ == "__main__":
    LIST.write_text(json.dumps(generate(Path(sys.argv[1])), indent=1) + "\n", encoding="utf-8")
