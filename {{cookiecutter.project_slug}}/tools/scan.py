"""Scan the Dockerfiles, rendered manifests and both images with trivy: `nox -s scan`.

    python -m tools.scan [IMAGE REF ...]   # default: both images of this commit

Settings are in trivy.yaml. Without the vulnerability DB it warns, or fails when CI is set:
a scan without the DB would pass on images it never checked (SCAN_OFFLINE_OK=1 says the
machine is offline on purpose).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from tools.manifests import RENDERED, SOURCES, render
from tools.project import ROOT, image_ref, names, run, unbuilt

OFFLINE_OK = "SCAN_OFFLINE_OK"


class ScanError(RuntimeError):
    """The scan cannot be trusted or cannot run; the message says why."""


def trivy() -> str:
    """trivy from PATH, else the one installed next to this Python (the pinned wheel)."""
    return shutil.which("trivy") or str(Path(sys.executable).parent / "trivy")


def vulnerability_db_args(command: str) -> list[str] | None:
    """Arguments for a vulnerability pass, or None when trivy has no DB and can't get one."""
    update = subprocess.run(  # noqa: S603 - the trivy we chose
        [command, "image", "--config", "trivy.yaml", "--download-db-only"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if update.returncode == 0:
        return []
    cache = Path(os.environ.get("TRIVY_CACHE_DIR", Path.home() / ".cache" / "trivy"))
    return ["--skip-db-update"] if (cache / "db" / "trivy.db").is_file() else None


def scan(refs: Sequence[str]) -> None:
    command = trivy()
    vulnerability = vulnerability_db_args(command)
    if vulnerability is None:
        if os.environ.get("CI") and os.environ.get(OFFLINE_OK) != "1":
            raise ScanError(
                "trivy cannot download its vulnerability DB and CI is set: the images would go "
                f"unchecked (set {OFFLINE_OK}=1 to scan without it on an offline machine)"
            )
        print("warning: vulnerability scan skipped: trivy cannot download its DB from here")
    config = [command, "config", "--config", "trivy.yaml"]
    run(*config, "--misconfig-scanners", "dockerfile", ".")
    # k8s/ holds kustomize bases and patches: scan what the cluster gets, the rendered overlays.
    if shutil.which("kubectl"):
        for source in SOURCES:
            render(source)
        run(*config, "--ignorefile", "k8s/.trivyignore.yaml", str(RENDERED.relative_to(ROOT)))
    else:
        print("warning: kubectl not found: k8s manifests not scanned (`nox -s manifests` too)")
    if problem := unbuilt(refs):
        raise ScanError(problem)
    image = [command, "image", "--config", "trivy.yaml", "--image-src", "docker"]
    for ref in refs:
        run(*image, "--scanners", "secret", "--image-config-scanners", "misconfig,secret", ref)
        if vulnerability is not None:
            run(*image, "--scanners", "vuln", "--severity", "HIGH,CRITICAL", *vulnerability, ref)


def main(argv: Sequence[str]) -> int:
    try:
        scan(argv or [image_ref(image) for image in names().dockerfiles])
    except (ScanError, subprocess.CalledProcessError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
