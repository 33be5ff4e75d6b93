"""The serving image, run as the pod runs it: probes, metadata, predictions, limits, shutdown."""

from __future__ import annotations

from typing import Any

import docker
import pytest

from .containers import Server
from .pod import Pod

PACKAGE = "{{ cookiecutter.package_name }}"


def test_probes_answer(server: Server) -> None:
    assert server.request("/healthz").status == 200
    ready = server.request("/readyz")
    assert ready.status == 200, ready.body


def test_metadata_names_the_model_the_labels_name(
    server: Server, image_config: dict[str, Any]
) -> None:
    reply = server.request("/metadata")
    assert reply.status == 200, reply.body
    labels = image_config["Labels"]
    served = (reply.body["model_name"], reply.body["model_version"], reply.body["run_id"])
    labelled = (
        labels["ai.mlflow.model.name"],
        labels["ai.mlflow.model.version"],
        labels["ai.mlflow.run-id"],
    )
    assert served == labelled
    assert reply.body["features"], "the model has no input signature"


def test_predict_the_example(server: Server) -> None:
    metadata = server.request("/metadata").body
    example = metadata["example"]
    assert example is not None, "the model was exported without an input example"
    reply = server.post_json("/predict", example)
    assert reply.status == 200, reply.body
    assert len(reply.body["predictions"]) == len(example["instances"])
    if "classes" in metadata:  # a classifier
        assert set(reply.body["predictions"]) <= set(metadata["classes"])
    else:  # a regressor answers numbers, and no probabilities
        assert all(isinstance(value, float) for value in reply.body["predictions"])
        assert "probabilities" not in reply.body


def test_mlflow_scoring_protocol(server: Server) -> None:
    metadata = server.request("/metadata").body
    row = metadata["example"]["instances"][0]
    names = [feature["name"] for feature in metadata["features"]]
    payload = {"dataframe_split": {"columns": names, "data": [[row[n] for n in names]] * 3}}
    reply = server.post_json("/invocations", payload)
    assert reply.status == 200, reply.body
    assert len(reply.body["predictions"]) == 3


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b'{"instances": [{"no such feature": 1.0}]}', "application/json", 422),
        (b'{"instances": [', "application/json", 400),
        (b"instances=1", "application/x-www-form-urlencoded", 415),
    ],
    ids=["unknown-feature", "malformed-json", "not-json"],
)
def test_bad_predict_is_a_client_error(
    server: Server, body: bytes, content_type: str, status: int
) -> None:
    reply = server.request("/predict", body, content_type)
    assert reply.status == status, reply.body
    assert reply.body["error"], "a 4xx reply must say what was wrong"
    assert server.request("/healthz").status == 200


def test_image_defaults(image_config: dict[str, Any]) -> None:
    env = dict(item.split("=", 1) for item in image_config["Env"])
    assert image_config["User"] == "10001:10001"
    assert "8000/tcp" in image_config["ExposedPorts"]
    assert image_config["Cmd"] == [f"{PACKAGE}-serve"]
    assert image_config["Healthcheck"]["Test"] == ["CMD", f"{PACKAGE}-healthcheck"]
    assert (env["HOST"], env["PORT"], env["MODEL_URI"]) == ("0.0.0.0", "8000", "/app/model")  # noqa: S104
    for key in ("source", "revision", "created", "version"):
        assert image_config["Labels"][f"org.opencontainers.image.{key}"]


def test_runs_unprivileged_on_a_read_only_root(server: Server) -> None:
    host = server.inspect()["HostConfig"]
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert server.exec("id", "-u") == (0, "10001")
    for path in ("/app/model/probe", "/opt/venv/probe", "/probe"):
        assert server.exec("touch", path)[0] != 0, f"{path} is writable"
    assert server.exec("touch", "/tmp/probe")[0] == 0  # noqa: S108 - the container's tmpfs


def test_the_runtime_writes_nothing_of_its_own(server: Server) -> None:
    # onnxruntime's telemetry wrote a device id and a database under HOME (/tmp) at import.
    assert server.request("/predict", b'{"instances": [{}]}', "application/json").status == 422
    assert server.post_json("/predict", server.request("/metadata").body["example"]).status == 200
    home = "/tmp"  # noqa: S108 - the container's tmpfs
    assert server.exec("printenv", "HOME") == (0, home)
    written = server.exec("find", home, "-mindepth", "1", "-not", "-name", "probe")
    assert written == (0, ""), written
    assert "telemetry" not in server.logs().lower()


def test_runs_under_the_pods_limits(server: Server, serving_pod: Pod) -> None:
    host = server.inspect()["HostConfig"]
    memory = serving_pod.memory
    assert (host["Memory"], host["MemorySwap"], host["NanoCpus"]) == (
        memory,
        memory,
        serving_pod.nano_cpus,
    )


def test_healthcheck_command_passes(server: Server) -> None:
    assert server.exec(f"{PACKAGE}-healthcheck")[0] == 0, server.logs()


def test_no_build_tools_or_installers(engine: docker.DockerClient, serve_image: str) -> None:
    script = (
        "import importlib.util, shutil; "
        "print([m for m in ('pip', 'setuptools', 'uv') if importlib.util.find_spec(m)]"
        " + [t for t in ('gcc', 'cc', 'make', 'uv') if shutil.which(t)])"
    )
    found = engine.containers.run(serve_image, ["-c", script], entrypoint=["python"], remove=True)
    assert found.decode().strip() == "[]"


def test_sigterm_drains_and_exits_zero(own_server: Server, serving_pod: Pod) -> None:
    # Measured stops took <= 1.5 s; the engine may take the pod's whole grace period.
    own_server.container.stop(timeout=int(serving_pod.grace_seconds))
    state = own_server.inspect()["State"]
    # 137 would be SIGKILL after the grace period: the server did not finish shutting down.
    assert (state["ExitCode"], state["OOMKilled"]) == (0, False), own_server.logs()
