"""Build, label and push the two images: what `nox -s build`, `labels` and `push` run.

    python -m tools.images build [DOCKER BUILD OPTION ...]  # both images, tagged for this commit
    python -m tools.images labels                          # the model's labels as KEY=VALUE
    python -m tools.images push                            # to REGISTRY; prints each digest

All through the docker CLI (BuildKit builds, the credential helpers push). Names and the tag
rule come from tools/project.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from tools.project import ROOT, git, image_ref, names, registry, run, unbuilt, version

MODEL_DIR = ROOT / "build" / "model"
# The MLmodel metadata key of a verified ONNX model: serve/loading.py's ONNX_METADATA, repeated
# because this runs without the package installed (tests/tools/test_images.py checks both).
ONNX_METADATA = "onnx"
REGISTRY_URI_METADATA = "registry_uri"  # promotion.py's, repeated for the same reason
PYTHON = (ROOT / ".python-version").read_text().strip()


class ImageError(RuntimeError):
    """A step cannot go on; the message says what to do."""


def read_mlmodel(model_dir: Path) -> dict[str, Any]:
    """The exported model's MLmodel file, or an error saying how to make one."""
    if not (model_dir / "MLmodel").is_file():
        raise ImageError(
            f"no exported model in {model_dir.relative_to(ROOT)}/ (the serving image ships it): "
            "make one with `nox -s train`, or build from the registry with "
            "MODEL_URI=models:/<name>@champion"
        )
    return dict(yaml.safe_load((model_dir / "MLmodel").read_text()) or {})


def model_labels(model_dir: Path = MODEL_DIR) -> dict[str, str]:
    """The exported model's name, version, run id and registry (the serving image's labels)."""
    content = read_mlmodel(model_dir)
    metadata = content.get("metadata") or {}
    return {
        "MODEL_NAME": str(metadata.get("model_name", "unknown")),
        "MODEL_VERSION": str(metadata.get("model_version", "unknown")),
        "MODEL_RUN_ID": str(content.get("run_id", "unknown")),
        # Where that version number means something: the registry, without credentials.
        "MODEL_REGISTRY_URI": str(metadata.get(REGISTRY_URI_METADATA, "unknown")),
    }


def model_runtime(model_dir: Path = MODEL_DIR) -> str:
    """`onnx` when training added a verified ONNX model (the server checks it again at load, and
    the slim image refuses to start if it disagrees), else `sklearn`: what the image installs."""
    onnx = (read_mlmodel(model_dir).get("metadata") or {}).get(ONNX_METADATA)
    return "onnx" if onnx else "sklearn"


def oci_labels() -> dict[str, str]:
    """Build arguments for the OCI labels; `created` is the commit time, so rebuilds agree."""
    created = git("log", "-1", "--format=%cI") or datetime.now(UTC).isoformat(timespec="seconds")
    return {
        "PYTHON_VERSION": PYTHON,
        "VERSION": version(),
        "REVISION": git("rev-parse", "HEAD") or "unknown",
        "CREATED": created,
    }


def build(options: Sequence[str]) -> None:
    """Build both images for this commit and print their sizes."""
    common = oci_labels()
    serving = common | model_labels() | {"MODEL_RUNTIME": model_runtime()}
    for image, dockerfile in names().dockerfiles.items():
        args = serving if image == names().image else common
        tagged = ["--file", dockerfile, "--tag", image_ref(image)]
        build_args = [f"--build-arg={name}={value}" for name, value in args.items()]
        run("docker", "build", *tagged, *build_args, *options, ".")
    for image in names().dockerfiles:
        size = inspect(image_ref(image))["Size"]
        print(f"{image_ref(image)}: {size / 1e6:.0f} MB", flush=True)


def push() -> None:
    """Tag both images for the registry, push them and print each pushed digest."""
    refs = [image_ref(image) for image in names().dockerfiles]
    if problem := unbuilt(refs):
        raise ImageError(problem)
    for ref in refs:
        remote = f"{registry()}/{ref}"
        run("docker", "tag", ref, remote)
        run("docker", "push", remote)
        repository = remote.rpartition(":")[0]
        [digest] = [d for d in inspect(remote)["RepoDigests"] if d.startswith(f"{repository}@")]
        print(f"pushed {remote} {digest.rpartition('@')[2]}", flush=True)


def inspect(ref: str) -> dict[str, Any]:
    """What `docker image inspect` says of `ref`."""
    command = ["docker", "image", "inspect", ref]
    done = subprocess.run(command, capture_output=True, text=True, check=True)  # noqa: S603
    return dict(json.loads(done.stdout)[0])


def main(argv: Sequence[str]) -> int:
    command, *options = argv or ["help"]
    try:
        if command == "build":
            build(options)
        elif command == "labels":
            for name, value in model_labels().items():
                print(f"{name}={value}")
        elif command == "push":
            push()
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except (ImageError, subprocess.CalledProcessError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
