"""tools/canary.py: the canary Deployment derived from the rendered stable one, and the gate
judging real servers' /metrics: the same model is promoted, a model with corrupted weights is
rolled back (the rollout itself runs on kind: `nox -s canary`)."""

from __future__ import annotations

import contextlib
import copy
import json
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skops.io
import yaml

from tools import canary
from tools.project import ROOT, names

from ..serve.servers import Server, running_server

# Enough rows per request that a few seconds of traffic fill the drift window (200 rows).
BATCH = 40


def test_the_canary_is_the_stable_deployment_with_its_track_and_image(
    kind_overlay: list[dict[str, Any]],
) -> None:
    [stable] = [
        d
        for d in kind_overlay
        if (d["kind"], d["metadata"]["name"]) == ("Deployment", names().deployment)
    ]
    image = f"{names().image}:sha-0123abc"
    manifest = canary.canary_deployment(stable, image, 2)
    assert manifest["metadata"]["name"] == f"{names().deployment}-canary"
    assert manifest["metadata"]["namespace"] == stable["metadata"]["namespace"]
    assert manifest["spec"]["replicas"] == 2
    for labels in (
        manifest["metadata"]["labels"],
        manifest["spec"]["selector"]["matchLabels"],
        manifest["spec"]["template"]["metadata"]["labels"],
    ):
        assert labels[canary.TRACK] == "canary"
    # The serving Service selects the canary's pods too: it takes its share of the traffic.
    [service] = [
        d
        for d in kind_overlay
        if d["kind"] == "Service" and d["metadata"]["name"] == names().deployment
    ]
    assert (
        service["spec"]["selector"].items()
        <= manifest["spec"]["template"]["metadata"]["labels"].items()
    )
    # Everything else is the stable's: limits, probes, security, volumes, settings.
    expected = copy.deepcopy(stable["spec"])
    expected["template"]["spec"]["containers"][0]["image"] = image
    got = copy.deepcopy(manifest["spec"])
    for labels in (got["selector"]["matchLabels"], got["template"]["metadata"]["labels"]):
        del labels[canary.TRACK]
    del got["replicas"]
    assert got == expected
    assert stable["spec"]["template"]["spec"]["containers"][0]["image"] != image  # not modified


def corrupted_copy(model: Path, to: Path) -> Path:
    """`model` as a diverged training run leaves it: NaN weights, and no ONNX twin."""
    shutil.copytree(model.resolve(), to)
    mlmodel = yaml.safe_load((to / "MLmodel").read_text())
    for file in mlmodel.get("metadata", {}).pop("onnx", {}).values():
        (to / file).unlink()
    (to / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    flavor = mlmodel["flavors"]["sklearn"]
    path = to / flavor["pickled_model"]
    pipeline = skops.io.load(path, trusted=flavor["skops_trusted_types"])
    pipeline[-1].coef_[:] = np.nan
    skops.io.dump(pipeline, path)
    return to


@pytest.fixture(scope="module")
def servers(
    exported_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Server]]:
    """The stable model, the same model as a canary, and a broken one, each on its own server."""
    folder = tmp_path_factory.mktemp("canary")
    broken = corrupted_copy(exported_model, folder / "broken")
    models = {"stable": exported_model, "good": exported_model, "broken": broken}
    with contextlib.ExitStack() as stack:
        yield {
            name: stack.enter_context(running_server(model, folder / f"{name}.log"))
            for name, model in models.items()
        }


def example(server: Server) -> bytes:
    with urllib.request.urlopen(server.url("/metadata"), timeout=10) as answer:
        instances = json.load(answer)["example"]["instances"]
    return json.dumps({"instances": instances * (BATCH // len(instances) + 1)}).encode()


@pytest.fixture
def traffic(servers: dict[str, Server]) -> Iterator[dict[str, list[int]]]:
    """Clients predicting on every server until the test ends; the statuses each got."""
    body, stop = example(servers["stable"]), threading.Event()
    statuses: dict[str, list[int]] = {name: [] for name in servers}

    def send() -> None:
        while not stop.is_set():
            for name, server in servers.items():
                request = urllib.request.Request(
                    server.url("/predict"), body, {"Content-Type": "application/json"}
                )
                try:
                    with urllib.request.urlopen(request, timeout=10) as answer:
                        statuses[name].append(answer.status)
                except urllib.error.HTTPError as error:
                    statuses[name].append(error.code)

    thread = threading.Thread(target=send)
    thread.start()
    try:
        yield statuses
    finally:
        stop.set()
        thread.join()


def gate(servers: dict[str, Server], name: str) -> subprocess.CompletedProcess[str]:
    """`python -m tools.canary gate` on the stable server and the named canary."""
    base = {key: server.url("") for key, server in servers.items()}
    command = [sys.executable, "-m", "tools.canary", "gate", "--stable", base["stable"]]
    command += ["--canary", base[name], "--watch", "4", "--min-requests", "5"]
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    print(result.stdout)  # the decision line, shown with -s
    return result


def test_the_same_model_is_promoted(
    servers: dict[str, Server], traffic: dict[str, list[int]]
) -> None:
    result = gate(servers, "good")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("promote: "), result.stdout
    assert "0 rows non-finite" in result.stdout
    assert set(traffic["good"]) == {200}


def test_corrupted_weights_are_rolled_back(
    servers: dict[str, Server], traffic: dict[str, list[int]]
) -> None:
    result = gate(servers, "broken")
    assert result.returncode == 1, result.stdout + result.stderr
    [line] = result.stdout.splitlines()
    assert line.startswith(
        "roll back: 100.0% of its rows are non-finite predictions (stable 0.0%)"
    ), line
    assert set(traffic["broken"]) == {422}
    assert set(traffic["stable"]) == {200}
