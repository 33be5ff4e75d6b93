"""The Open Inference Protocol (KServe V2) over REST, beside /predict and /invocations.

`{name}` is the served model's registered name (GET /metadata's `model_name`) and `{version}`
its version: another is a JSON 404. Bodies pass the same checks as the other endpoints
(body.py, requests.py), then tensors.py reads the tensors. A KServe InferenceService or any
V2 client can call the server unchanged.
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

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
from .requests import RowValidator
from .tensors import FEATURE_DATATYPE, PREDICT, PROBA, TensorReader

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    Endpoint = Callable[[Request], Coroutine[Any, Any, Response]]
    Decorator = Callable[[Endpoint], Endpoint]

SERVER, LIVE, READY = "/v2", "/v2/health/live", "/v2/health/ready"
MODEL, MODEL_VERSION = "/v2/models/{name}", "/v2/models/{name}/versions/{version}"
INFER, INFER_VERSION = MODEL + "/infer", MODEL_VERSION + "/infer"
MODEL_READY, MODEL_VERSION_READY = MODEL + "/ready", MODEL_VERSION + "/ready"
# Route templates, as /metrics labels them: never the name a client sent.
ROUTES = frozenset({SERVER, LIVE, READY, MODEL, MODEL_VERSION, MODEL_READY, MODEL_VERSION_READY})
ROUTES |= {INFER, INFER_VERSION}
PLATFORMS = {ONNX_RUNTIME: "onnxruntime_onnx"}  # else the scikit-learn pipeline: "sklearn"


def install_v2(
    app: FastAPI, state: ServingState, settings: ServeSettings, metrics: Metrics
) -> None:
    """Add the V2 routes to `app`, serving the model `state` holds once it is loaded."""
    # app.py imports this module to call install_v2(): its helpers are imported at call time.
    from .app import REQUEST_BODY, RawRoute, _predict, _serving, json_response

    def route(path: str, summary: str, method: str = "GET", **extra: Any) -> Decorator:
        """Register an endpoint taking the Request (RawRoute), its path parameters documented."""
        names = re.findall(r"{(\w+)}", path)
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in names
        ]

        def register(endpoint: Endpoint) -> Endpoint:
            app.router.add_api_route(
                path,
                endpoint,
                methods=[method],
                route_class_override=RawRoute,
                summary=summary,
                tags=["Open Inference Protocol (V2)"],
                openapi_extra={**extra, "parameters": parameters} if parameters else extra,
            )
            return endpoint

        return register

    def served_model(request: Request) -> tuple[ServedModel, RowValidator]:
        """The loaded model if the path names it (and its version), else a 404 (503 if none)."""
        served, validator = _serving(state, settings)
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
        return served, validator

    reader: TensorReader | None = None

    def tensor_reader(served: ServedModel, validator: RowValidator) -> TensorReader:
        nonlocal reader  # one per loaded model: it is built once, not per request
        if reader is None or reader.validator is not validator:
            reader = TensorReader(validator, served.classes, served.has_proba)
        return reader

    async def infer(request: Request) -> Response:
        served, validator = served_model(request)
        tensors = tensor_reader(served, validator)
        checked = tensors.read(await read_json(request))
        result = _predict(served, checked.rows, INFER, metrics)
        return json_response(
            {
                "model_name": served.name,
                "model_version": served.version,
                **({"id": checked.id} if checked.id is not None else {}),
                "outputs": tensors.outputs(result, checked.outputs),
            }
        )

    for path in (INFER, INFER_VERSION):
        route(path, "V2 inference: tensors in, predictions out", "POST", **REQUEST_BODY)(infer)

    async def model_metadata(request: Request) -> Response:
        served, validator = served_model(request)
        return json_response(metadata(served, tensor_reader(served, validator)))

    for path in (MODEL, MODEL_VERSION):
        route(path, "V2 model metadata: input and output tensors")(model_metadata)

    async def model_ready(request: Request) -> Response:
        served, _ = served_model(request)
        if state.shutting_down:
            raise ApiError(503, "not ready", not_ready_reason(state, settings))
        return json_response({"name": served.name, "ready": True})

    for path in (MODEL_READY, MODEL_VERSION_READY):
        route(path, "V2 model readiness")(model_ready)

    @route(LIVE, "V2 liveness: 200 while the process runs")
    async def live(_: Request) -> Response:
        return json_response({"live": True})

    @route(READY, "V2 readiness: 200 once the model is loaded, 503 before or when stopping")
    async def ready(_: Request) -> Response:
        if state.model is None or state.shutting_down:
            raise ApiError(503, "not ready", not_ready_reason(state, settings))
        return json_response({"ready": True})

    server = {"name": PROJECT, "version": _version(), "extensions": []}

    @route(SERVER, "V2 server metadata")
    async def server_metadata(_: Request) -> Response:
        return json_response(server)


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
