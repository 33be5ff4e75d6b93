"""Console entry points; each reads its settings from the environment and takes no arguments."""

from __future__ import annotations

import os
import sys
import traceback
import urllib.request
from enum import IntEnum
from typing import NoReturn

from .config import ConfigError, TrainSettings, load


class TrainExit(IntEnum):
    """Exit codes of the training entry point, one per cause (docs/training.md lists them)."""

    OK = 0  # gate passed: exported, then alias `champion` moved
    GATE_FAILED = 1  # below GATE_MIN: registered and tagged `failed`; alias and export kept
    BAD_SETTINGS = 2  # an environment variable is invalid; nothing was logged
    BAD_DATA = 3  # the data cannot train the task's model; nothing was logged
    TRACKING = 4  # the tracking store or registry is unreachable or refused a call
    EXPORT = 5  # the passing version is registered but not exported; alias not moved
    BEATEN = 6  # cleared GATE_MIN but worse than the champion: tagged `beaten_by_champion`
    BUG = 70  # anything else: a defect to report (sysexits' EX_SOFTWARE)


def fail(code: TrainExit, message: str) -> NoReturn:
    """Print `message` as one line on stderr and exit with `code`."""
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(code)


def fail_on_bug(error: Exception) -> NoReturn:
    """Exit TrainExit.BUG with one line saying what was raised and where."""
    frame = traceback.extract_tb(error.__traceback__)[-1]
    fail(
        TrainExit.BUG,
        f"unexpected {type(error).__name__} at {frame.filename}:{frame.lineno}: {error}",
    )


def train() -> None:
    """Train, register and export the model; the exit code is a TrainExit."""
    try:
        settings = load(TrainSettings)  # before importing MLflow: a typo fails in a second
    except ConfigError as error:
        fail(TrainExit.BAD_SETTINGS, str(error))
    from .data import DataError, load_dataset  # pandas, scikit-learn: not for serve/healthcheck

    try:
        # Before MLflow, too.
        dataset = load_dataset(settings.data_path, settings.target_column, settings.task)
    except DataError as error:
        fail(TrainExit.BAD_DATA, str(error))
    from . import train as training  # MLflow is only installed with the `train` extra
    from .evaluate import Outcome
    from .promotion import CHAMPION, ExportError
    from .tracking import TrackingError

    try:
        result = training.run(settings, dataset)
    except DataError as error:
        fail(TrainExit.BAD_DATA, str(error))
    except TrackingError as error:
        fail(TrainExit.TRACKING, str(error))
    except ExportError as error:
        fail(TrainExit.EXPORT, str(error))
    except Exception as error:  # a bug: still one line, with where it happened
        fail_on_bug(error)
    metrics = " ".join(f"{name}={value:.4f}" for name, value in result.metrics.items())
    print(f"run {result.run_id}: {metrics} ({result.seconds:.1f}s)")
    print(f"registered {result.model_name} version {result.model_version}")
    verdict = result.gate
    gate = f"{verdict.rule}: {verdict.metric}={verdict.value:.4f}"
    champion = verdict.champion
    if champion is None:
        print(f"no '{CHAMPION}' yet: GATE_MIN alone decides")
    elif champion.value is None:
        print(
            f"'{CHAMPION}' (version {champion.version}) has other features or output: "
            "not comparable, GATE_MIN alone decides"
        )
    else:
        gate += (
            f"; '{CHAMPION}' (version {champion.version}) {verdict.metric}="
            f"{champion.value:.4f} on the same holdout, GATE_TOLERANCE={verdict.tolerance}"
        )
    if verdict.outcome is not Outcome.PASSED:
        beaten = verdict.outcome is Outcome.BEATEN
        reason = "beaten by the champion" if beaten else "below GATE_MIN"
        print(
            f"quality gate failed, {reason} ({gate}); alias '{CHAMPION}' not moved",
            file=sys.stderr,
        )
        sys.exit(TrainExit.BEATEN if beaten else TrainExit.GATE_FAILED)
    print(f"quality gate passed ({gate}): alias '{CHAMPION}' -> {result.model_version}")
    print(f"exported to {result.export_dir}")


def export() -> None:
    """Export MODEL_URI's registered version to EXPORT_DIR, as training exports a champion;
    the exit code is a TrainExit (OK, BAD_SETTINGS, TRACKING, EXPORT or BUG)."""
    from .config import ExportSettings

    try:
        settings = load(ExportSettings)
    except ConfigError as error:
        fail(TrainExit.BAD_SETTINGS, str(error))
    from mlflow.exceptions import MlflowException

    from .promotion import export_registered
    from .serve.errors import one_line
    from .tracking import TrackingError, connect, describe

    try:
        connect(settings.mlflow_tracking_uri)
        exported = export_registered(
            settings.model_uri, settings.export_dir, settings.export_lock_seconds
        )
    except TrackingError as error:
        fail(TrainExit.TRACKING, str(error))
    except MlflowException as error:  # no such model, alias or version; a refused call
        where = describe(settings.mlflow_tracking_uri)
        fail(TrainExit.TRACKING, f"{where}: MODEL_URI={settings.model_uri}: {one_line(error)}")
    except OSError as error:
        fail(TrainExit.EXPORT, f"EXPORT_DIR={settings.export_dir}: {error}")
    except Exception as error:
        fail_on_bug(error)
    print(f"{settings.model_uri} is {exported.model_name} version {exported.version}")
    if exported.onnx_note:
        print(f"served by scikit-learn, not ONNX: {exported.onnx_note}")
    print(f"exported to {exported.path} (run {exported.run_id})")


def serve() -> None:
    """Serve the model until SIGTERM; exit 2 on bad settings, 1 if the model cannot load."""
    # One native thread per process (read when numpy/scikit-learn load, so set first): requests
    # are small and handled one at a time, and OpenMP spinning made a 1-row
    # HistGradientBoosting predict ~25x slower on 2 busy cores. Replicas scale out instead.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from .config import ServeSettings
    from .serve import server  # FastAPI and Granian are only installed with the `serve` extra

    try:
        code = server.run(load(ServeSettings))
    except ConfigError as error:  # a bad setting, or HOST:PORT cannot be listened on
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    sys.exit(code)


def healthcheck() -> None:
    """Exit 0 if 127.0.0.1:$PORT answers /healthz with 200, else 1 (the Docker HEALTHCHECK)."""
    url = f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            sys.exit(0 if response.status == 200 else 1)
    except (OSError, ValueError) as error:  # refused, timed out, non-2xx, or a bad PORT
        print(f"unhealthy: {url}: {error}", file=sys.stderr)
        sys.exit(1)
