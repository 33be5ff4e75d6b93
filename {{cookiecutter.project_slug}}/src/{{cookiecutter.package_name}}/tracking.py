"""Reach the MLflow tracking store before training, and give up on it in seconds, not minutes.

MLflow retries a failed HTTP call 7 times with exponential backoff and waits up to 120 s for
each answer (about four minutes in all, meant for rate limits); a training run would find the
server gone only after fitting. `connect` checks the store first and bounds those retries.
"""

from __future__ import annotations

import os
import ssl
import urllib.error
import urllib.request
from urllib.parse import urlsplit, urlunsplit

import mlflow
from mlflow.tracking import MlflowClient

from .config import redacted
from .serve.errors import one_line

# MLflow's own variables (see mlflow.environment_variables); defaults only, a value set in the
# environment wins. Worst case per call: 3 tries of up to 20 s each, seconds apart.
RETRY_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}
# One try at MLflow's /health, which needs no database: a live server answers in milliseconds,
# but the first API call of a fresh server on a busy machine can take several seconds.
PROBE_SECONDS = 10
# MLflow's own credential variables, which its client sends with every call.
CREDENTIALS = (
    "check MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN"
)


class TrackingError(RuntimeError):
    """The tracking store or model registry cannot be reached, or refused a call."""


def bound_retries() -> None:
    """Set MLflow's HTTP retry and timeout defaults (see RETRY_DEFAULTS) unless already set."""
    for name, value in RETRY_DEFAULTS.items():
        os.environ.setdefault(name, value)


def connect(uri: str) -> None:
    """Use `uri` for tracking and the registry; raise TrackingError unless both answer."""
    bound_retries()
    if urlsplit(uri).scheme in {"http", "https"}:
        _probe(uri)
    mlflow.set_tracking_uri(uri)
    try:
        client = MlflowClient()  # MLFLOW_REGISTRY_URI, when set, names a separate registry
        client.search_experiments(max_results=1)
        client.search_registered_models(max_results=1)
    except Exception as error:  # unknown scheme, unreadable store, refused call: all one cause
        text = one_line(error)
        if any(f"error code {code}" in text for code in (401, 403)):
            text += f" ({CREDENTIALS})"
        raise TrackingError(f"{describe(uri)} is not usable: {text}") from None


def public_uri(uri: str) -> str:
    """`uri` with no user, password, query or fragment: what an image label may say."""
    parts = urlsplit(uri)
    if not parts.netloc:  # sqlite:///mlflow.db, databricks, a path: nothing secret in them
        return uri
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def describe(uri: str) -> str:
    """`MLFLOW_TRACKING_URI=<uri>` with any password left out, for messages."""
    return f"MLFLOW_TRACKING_URI={redacted(uri)}"


def _probe(uri: str) -> None:
    # Any HTTP answer, even 401 or 404, means a server is there; the MLflow calls then say more.
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=PROBE_SECONDS):  # noqa: S310 - http(s) only
            return
    except urllib.error.HTTPError:
        return
    except (OSError, ValueError) as error:  # refused, timed out, unresolvable, bad port
        reason = getattr(error, "reason", error)
        if isinstance(reason, ssl.SSLError):
            return  # a server answered; MLflow's own TLS settings (a CA bundle, ...) may accept it
        raise TrackingError(
            f"{describe(uri)} does not answer ({one_line(reason)}, waited up to "
            f"{PROBE_SECONDS} s): start the tracking server or fix the URI"
        ) from None
