"""The runner image act runs a bake's jobs in, built from proof/act-runner.Dockerfile.

Tagged by the digest of everything that goes into it (the Dockerfile and the host's docker CLI
and buildx plugin), so a run reuses the image of an earlier one and a change rebuilds it.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARE = ROOT.parent / "shared" / "act"  # beside the repository, as ../shared/ci is for .ci/run
ACTIONS_TAR = SHARE / "actions.tar.xz"
STAND_INS_TAR = SHARE / "stand-ins.tar.xz"
DOCKERFILE = Path(__file__).with_name("act-runner.Dockerfile")
REPOSITORY = "mlops-act-runner"


def host_binaries() -> dict[str, Path]:
    """The docker CLI and buildx plugin the jobs use on the host's engine, by context name."""
    docker = shutil.which("docker")
    if docker is None:
        raise FileNotFoundError("no docker CLI on PATH")
    plugins = [Path(p) / "docker-buildx" for p in CLI_PLUGIN_DIRS]
    buildx = next((p for p in plugins if p.is_file()), None)
    if buildx is None:
        raise FileNotFoundError(f"no docker-buildx plugin in {', '.join(CLI_PLUGIN_DIRS)}")
    return {"docker": Path(docker), "docker-buildx": buildx}


CLI_PLUGIN_DIRS = (
    str(Path.home() / ".docker" / "cli-plugins"),
    "/usr/local/lib/docker/cli-plugins",
    "/usr/libexec/docker/cli-plugins",
    "/usr/lib/docker/cli-plugins",
)


def runner_image(context: Path) -> str:
    """Build (or reuse) the runner image; return its tag. `context` is a scratch folder."""
    inputs = {"Dockerfile": DOCKERFILE, **host_binaries()}
    digest = hashlib.sha256()
    for name, path in sorted(inputs.items()):
        digest.update(name.encode() + b"\0" + path.read_bytes())
    tag = f"{REPOSITORY}:{digest.hexdigest()[:12]}"
    known = subprocess.run(["docker", "image", "inspect", tag], capture_output=True, check=False)
    if known.returncode == 0:
        return tag
    build = context / "runner-context"
    build.mkdir(parents=True, exist_ok=True)
    for name, path in inputs.items():
        shutil.copy2(path, build / name)
    subprocess.run(
        ["docker", "build", "--quiet", "--tag", tag, str(build)],
        capture_output=True,
        text=True,
        check=True,
    )
    shutil.rmtree(build)
    return tag
