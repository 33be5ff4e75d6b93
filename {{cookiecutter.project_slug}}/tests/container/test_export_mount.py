"""The serving image on an export bind-mounted from the host, as its non-root user (UID 10001).

Training leaves EXPORT_DIR a symlink to a folder it made world-readable; mounted read-only over
/app/model, it replaces the model the image ships, as when an operator serves a new export.
"""

from __future__ import annotations

import os
from pathlib import Path

import docker
import pytest
import yaml

from .containers import ready
from .pod import Pod


@pytest.mark.parametrize("umask", [0o022, 0o077], ids=["umask-022", "umask-077"])
def test_the_server_loads_an_export_mounted_from_the_host(
    engine: docker.DockerClient,
    serve_image: str,
    serving_pod: Pod,
    exported_model: Path,
    tmp_path: Path,
    umask: int,
) -> None:
    # Imported here: a top-level import would sort differently with each package name.
    from {{ cookiecutter.package_name }}.promotion import (
        export,
    )

    metadata = yaml.safe_load((exported_model / "MLmodel").read_text())["metadata"]
    version, run_id = metadata["model_version"], metadata["run_id"]
    target = tmp_path / "build" / "model"
    previous = os.umask(umask)  # a trainer's umask must not decide who can read the export
    try:
        export(metadata["model_name"], version, run_id, target)
    finally:
        os.umask(previous)
    assert target.is_symlink()
    mount = {str(target): {"bind": "/app/model", "mode": "ro"}}  # the engine follows the link
    with ready(engine, serve_image, serving_pod, volumes=mount) as server:
        assert server.exec("id", "-u") == (0, "10001")
        reply = server.request("/metadata")
        assert reply.status == 200, reply
        assert (reply.body["model_version"], reply.body["run_id"]) == (version, run_id)
        predicted = server.post_json("/predict", reply.body["example"])
        assert predicted.status == 200, predicted
