"""The Open Inference Protocol (KServe V2) over REST, beside /predict and /invocations.

`{name}` is the served model's registered name (GET /metadata's `model_name`) and `{version}`
its version: another is a JSON 404. Bodies pass the same checks as the other endpoints
(body.py, requests.py), then tensors.py reads the tensors. A KServe InferenceService or any
V2 client can call the server unchanged.
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from ..config import PROJECT, ServeSettings
from .body import read_json
from .errors import ApiError, short
from .lifecycle import ServingState, not_ready_reason
from .loading import UNKNOWN
from .metrics import Metrics
from .model import ServedModel
from .onnx_runtime import RUNTIME as ONNX_RUNTIME
from .routing import REQUEST_BODY, Endpoint, add_raw_route, json_response, predict, serving
from .tensors import FEATURE_DATATYPE, PREDICT, PROBA, TensorReader

SERVER, LIVE, READY = "/v2", "/v2/health/live", "/v2/health/ready"
MODEL, MODEL_VERSION = "/v2/models/{name}", "/v2/models/{name}/versions/{version}"
INFER, INFER_VERSION = MODEL + "/infer", MODEL_VERSION + "/infer"
MODEL_READY, MODEL_VERSION_READY = MODEL + "/ready", MODEL_VERSION + "/ready"
# Route templates, as /metrics labels them: never the name a client sent.
ROUTES = frozenset({SERVER, LIVE, READY, MODEL, MODEL_VERSION, MODEL_READY, MODEL_VERSION_READY})
ROUTES |= {INFER, INFER_VERSION}
TAG = "Open Inference Protocol (V2)"
PLATFORMS = {ONNX_RUNTIME: "onnxruntime_onnx"}  # else the scikit-learn pipeline: "sklearn"


class V2Api:
    """The V2 routes, serving the model `state` holds once it is loaded."""

    def __init__(self, state: ServingState, settings: ServeSettings, metrics: Metrics) -> None:
        self.state, self.settings, self.metrics = state, settings, metrics
        self.server = {"name": PROJECT, "version": _version(), "extensions": []}
        self._reader: TensorReader | None = None

    def install(self, app: FastAPI) -> None:
        """Add the routes to `app`, each with its path parameters documented."""
        routes: list[tuple[tuple[str, ...], Endpoint, str, str]] = [
            (
                (INFER, INFER_VERSION),
                self.infer,
                "POST",
                "V2 inference: tensors in, predictions out",
            ),
            (
                (MODEL, MODEL_VERSION),
                self.model_metadata,
                "GET",
                "V2 model metadata: input and output tensors",
            ),
            ((MODEL_READY, MODEL_VERSION_READY), self.model_ready, "GET", "V2 model readiness"),
            ((LIVE,), self.live, "GET", "V2 liveness: 200 while the process runs"),
            (
                (READY,),
                self.ready,
                "GET",
                "V2 readiness: 200 once the model is loaded, 503 before or when stopping",
            ),
            ((SERVER,), self.server_metadata, "GET", "V2 server metadata"),
        ]
        for paths, endpoint, method, summary in routes:
            for path in paths:
                extra: dict[str, Any] = REQUEST_BODY if method == "POST" else {}
                if names := re.findall(r"{(\w+)}", path):
                    extra = {**extra, "parameters": [_path_parameter(name) for name in names]}
                add_raw_route(
                    app, path, endpoint, method, summary=summary, tags=[TAG], openapi_extra=extra
                )

    async def infer(self, request: Request) -> Response:
        served, tensors = self._served(request)
        checked = tensors.read(await read_json(request))
        result = predict(served, checked.rows, INFER, self.metrics)
        return json_response(
            {
                "model_name": served.name,
                "model_version": served.version,
                **({"id": checked.id} if checked.id is not None else {}),
                "outputs": tensors.outputs(result, checked.outputs),
            }
        )

    async def model_metadata(self, request: Request) -> Response:
        return json_response(metadata(*self._served(request)))

    async def model_ready(self, request: Request) -> Response:
        served, _ = self._served(request)
        if self.state.shutting_down:
            raise ApiError(503, "not ready", not_ready_reason(self.state, self.settings))
        return json_response({"name": served.name, "ready": True})

    async def live(self, _: Request) -> Response:
        return json_response({"live": True})

    async def ready(self, _: Request) -> Response:
        if self.state.model is None or self.state.shutting_down:
            raise ApiError(503, "not ready", not_ready_reason(self.state, self.settings))
        return json_response({"ready": True})

    async def server_metadata(self, _: Request) -> Response:
        return json_response(self.server)

    def _served(self, request: Request) -> tuple[ServedModel, TensorReader]:
        """The loaded model if the path names it (and its version), else a 404 (503 if none)."""
        served, validator = serving(self.state, self.settings)
        name, wanted = request.path_params["name"], request.path_params.get("version")
        if name != served.name:
            raise ApiError(
                404,
                "unknown model",
                f"no model {short(name)} here; this server serves {served.name!r} "
                f"(GET /v2/models/{served.name})",
            )
        if wanted is not None and wanted != served.version:
            raise ApiError(
                404,
                "unknown model version",
                f"model {served.name!r} is version {served.version!r} here, not {short(wanted)}",
            )
        # One reader per loaded model: built once, not per request.
        if self._reader is None or self._reader.validator is not validator:
            self._reader = TensorReader(validator, served.classes, served.has_proba)
        return served, self._reader


def _path_parameter(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def metadata(served: ServedModel, tensors: TensorReader) -> dict[str, Any]:
    """The model metadata V2 clients read: one input tensor per feature, and the outputs."""
    outputs: list[dict[str, Any]] = [
        {"name": PREDICT, "datatype": tensors.label_datatype, "shape": [-1]}
    ]
    if PROBA in tensors.available:
        width = len(served.classes or [])
        outputs.append({"name": PROBA, "datatype": "FP64", "shape": [-1, width]})
    return {
        "name": served.name,
        **({"versions": [served.version]} if served.version != UNKNOWN else {}),
        "platform": PLATFORMS.get(served.runtime, "sklearn"),
        "inputs": [
            {"name": f.name, "datatype": FEATURE_DATATYPE[f.type], "shape": [-1]}
            for f in served.features
        ],
        "outputs": outputs,
    }


def _version() -> str:
    try:
        return version(PROJECT)
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"
