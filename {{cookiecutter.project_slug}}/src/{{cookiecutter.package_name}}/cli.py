"""Console entry points; each reads its settings from the environment and takes no arguments."""

from __future__ import annotations

import os
import sys
import urllib.request

from .config import ConfigError, TrainSettings, load


def train() -> None:
    """Train, register and export the model; exit 1 when the quality gate fails, 2 on bad input."""
    from . import train as training  # MLflow is only installed with the `train` extra
    from .data import DataError  # pandas and scikit-learn: kept out of serve and healthcheck

    try:
        result = training.run(load(TrainSettings))
    except (ConfigError, DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    metrics = " ".join(f"{name}={value:.4f}" for name, value in result.metrics.items())
    print(f"run {result.run_id}: {metrics} ({result.seconds:.1f}s)")
    print(f"registered {result.model_name} version {result.model_version}")
    gate = f"{result.gate_metric}={result.gate_value:.4f}, GATE_MIN={result.gate_min}"
    if not result.passed:
        print(
            f"quality gate failed: {gate}; alias '{training.CHAMPION}' not moved",
            file=sys.stderr,
        )
        sys.exit(1)
    print(f"quality gate passed ({gate}): alias '{training.CHAMPION}' -> {result.model_version}")
    print(f"exported to {result.export_dir}")


def serve() -> None:
    """Serve the model until SIGTERM; exit 2 on bad settings, 1 if the model cannot load."""
    # One native thread per process (read when numpy/scikit-learn load, so set first): requests
    # are small and handled one at a time, and OpenMP spinning made a 1-row
    # HistGradientBoosting predict ~25x slower on 2 busy cores. Replicas scale out instead.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from .config import ServeSettings
    from .serve import server  # FastAPI and uvicorn are only installed with the `serve` extra

    try:
        settings = load(ServeSettings)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    sys.exit(server.run(settings))


def healthcheck() -> None:
    """Exit 0 if 127.0.0.1:$PORT answers /healthz with 200, else 1 (the Docker HEALTHCHECK)."""
    url = f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            sys.exit(0 if response.status == 200 else 1)
    except (OSError, ValueError) as error:  # refused, timed out, non-2xx, or a bad PORT
        print(f"unhealthy: {url}: {error}", file=sys.stderr)
        sys.exit(1)
