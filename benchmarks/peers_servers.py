"""The peer servers of benchmarks/peers.py and the venv they run from.

The peers venv (`uv venv` + `uv pip install`) holds exact versions of Seldon MLServer with its
scikit-learn runtime and of BentoML, and the bake's own versions of the model's runtimes
(scikit-learn, skops, onnxruntime, numpy), so every server computes with the same code. Each
server is a subprocess started by benchmarks/servers.py (pinned to SERVER_CPU); nothing here
imports MLServer, BentoML or the bake: peers_export.py, peers_runtime.py and peers_bento.py run
inside the peers venv.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import servers
from peers_protocols import V2_MODEL

PEERS_PYTHON = "3.12"  # MLServer 1.7.1 declares Python < 3.13
PEER_PACKAGES = (
    "mlserver==1.7.1",
    "mlserver-sklearn==1.7.1",
    "bentoml==1.4.40",
    # MLServer 1.7.1 calls asyncio.get_event_loop() outside a loop; uvloop >= 0.22 raises there.
    "uvloop==0.21.0",
)
RUNTIMES = ("scikit-learn", "skops", "onnxruntime", "numpy")  # pinned at the bake's versions
SKLEARN_RUNTIME = "mlserver_sklearn.SKLearnModel"
ONNX_RUNTIME = "peers_runtime.OnnxRuntime"  # benchmarks/peers_runtime.py
# Quiet start-up lines on stderr (MLServer's own logger writes to stdout, which is dropped).
MLSERVER_LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {name: {"level": "WARNING"} for name in ("uvicorn", "uvicorn.error")},
}


def uv_env() -> dict[str, str]:
    """This environment without the caller's venv, so uv acts on the venv it is given."""
    unset = {"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT"}
    return {k: v for k, v in os.environ.items() if k not in unset}


def runtime_pins(bake_bin: Path) -> list[str]:
    """`name==version` of RUNTIMES as installed in the bake's venv (read by its python)."""
    code = (
        "import importlib.metadata as m, sys\n"
        "for name in sys.argv[1:]: print(f'{name}=={m.version(name)}')"
    )
    output = subprocess.run(
        [str(bake_bin / "python"), "-c", code, *RUNTIMES],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return output.split()


def install(venv: Path, bake_bin: Path) -> Path:
    """The peers venv at `venv` (made if missing), holding PEER_PACKAGES and the bake's
    runtimes; its bin folder."""
    if not (venv / "bin" / "python").is_file():
        subprocess.run(
            ["uv", "venv", "--quiet", "--python", PEERS_PYTHON, str(venv)],
            env=uv_env(),
            check=True,
        )
    packages = [*PEER_PACKAGES, *runtime_pins(bake_bin)]
    print(f"peers venv {venv}: {' '.join(packages)}", flush=True)
    subprocess.run(
        ["uv", "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), *packages],
        env=uv_env(),
        check=True,
    )
    return venv / "bin"


def export_joblib(peers_bin: Path, model_dir: Path, target: Path) -> Path:
    """The bake's skops model dumped as joblib by peers_export.py in the peers venv."""
    script = servers.BENCHMARKS / "peers_export.py"
    command = [str(peers_bin / "python"), str(script), str(model_dir), str(target)]
    subprocess.run(command, check=True)
    return target


def mlserver_repository(
    folder: Path, implementation: str, uri: Path, port: int, workers: int
) -> dict[str, Any]:
    """Write MLServer's settings.json and model-settings.json into `folder`: one model named
    V2_MODEL, HTTP on `port`, gRPC and metrics on free ports, debug off (no access log), and
    `workers` inference processes (0: inference in the server's own process). The settings."""
    folder.mkdir(parents=True, exist_ok=True)
    settings = {
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": servers.free_port(),
        "metrics_port": servers.free_port(),
        "debug": False,
        "parallel_workers": workers,
        "logging_settings": MLSERVER_LOGGING,
    }
    model = {"name": V2_MODEL, "implementation": implementation, "parameters": {"uri": str(uri)}}
    (folder / "settings.json").write_text(json.dumps(settings, indent=2))
    (folder / "model-settings.json").write_text(json.dumps(model, indent=2))
    return settings


def peer_env(peers_bin: Path, **extra: str) -> dict[str, str]:
    """The peers venv first on PATH, benchmarks/ importable (MLServer's custom runtime), one
    thread for numerical libraries, as the bake's `<package>-serve` sets it."""
    return servers.child_env(
        peers_bin, PYTHONPATH=str(servers.BENCHMARKS), OMP_NUM_THREADS="1", **extra
    )


def mlserver(
    peers_bin: Path, folder: Path, implementation: str, uri: Path, workers: int
) -> servers.ServerSpec:
    """`mlserver start` on a repository of one model, ready once that model is."""
    port = servers.free_port()
    mlserver_repository(folder, implementation, uri, port, workers)
    command = [str(peers_bin / "mlserver"), "start", str(folder)]
    return servers.ServerSpec(command, peer_env(peers_bin), f"/v2/models/{V2_MODEL}/ready", port)


def bentoml(peers_bin: Path, model_file: Path, home: Path) -> servers.ServerSpec:
    """`bentoml serve` of peers_bento.py's service on the joblib model."""
    port = servers.free_port()
    command = [
        str(peers_bin / "bentoml"), "serve", "peers_bento:Predictor", "--working-dir",
        str(servers.BENCHMARKS), "--host", "127.0.0.1", "--port", str(port), "--quiet",
    ]  # fmt: skip
    env = peer_env(
        peers_bin,
        PEERS_MODEL_FILE=str(model_file),
        BENTOML_HOME=str(home),  # its model store and logs, not the user's ~/bentoml
        BENTOML_DO_NOT_TRACK="true",
    )
    return servers.ServerSpec(command, env, "/readyz", port)
