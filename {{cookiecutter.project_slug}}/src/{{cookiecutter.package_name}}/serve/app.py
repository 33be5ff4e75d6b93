"""The FastAPI app: health, readiness, metadata, predictions, MLflow-compatible invocations."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.telemetry import TelemetryConfig
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from ..config import PROJECT, ServeSettings, load
from .body import CLOSE, RequestFraming, read_json
from .errors import ApiError
from .lifecycle import ServingState, lifespan, not_ready_reason
from .limits import BODY_TIMED_OUT
from .loading import load_model
from .metrics import CLIENT_GONE, Metrics, MetricsMiddleware
from .model import ServedModel
from .openapi import install as install_openapi
from .routing import REQUEST_BODY, Endpoint, add_raw_route, json_response, predict, serving
from .v2 import INFER, V2Api
from .v2 import ROUTES as V2_ROUTES

log = logging.getLogger(__name__)

PREDICTION_PATHS = {"/predict", "/invocations", INFER}
NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
ENDPOINTS = {"/healthz", "/readyz", "/metadata", "/predict", "/invocations", "/metrics", *V2_ROUTES}


def create_app(
    settings: ServeSettings,
    *,
    model: ServedModel | None = None,
    loader: Callable[[str], ServedModel] = load_model,
    on_load_failure: Callable[[str], None] | None = None,
) -> FastAPI:
    """Build the app; without `model`, load it from MODEL_URI in the background at startup.

    Loading in a thread lets /healthz answer (and /readyz say 503) while the model loads.
    `on_load_failure` is called with the reason if loading fails (the server exits).
    """
    state = ServingState()
    metrics = Metrics(ENDPOINTS)
    app = FastAPI(
        title=PROJECT,
        summary="Predictions from the exported scikit-learn model.",
        lifespan=lifespan(state, metrics, settings, model, loader, on_load_failure),
        # Prometheus /metrics is this server's telemetry. FastAPI's native OpenTelemetry asks
        # whether a provider is configured on every request (~30 µs, 10% of a 1-row request)
        # even when none is: it is off unless OTEL_TRACING=true (see config.ServeSettings).
        telemetry=None if settings.otel_tracing else NO_TELEMETRY,
    )
    app.state.serving = state
    app.state.metrics = metrics
    # The first of the request checks (requests.py lists them all), made before routing.
    app.add_middleware(RequestFraming, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    _add_error_handlers(app)
    _add_probes(app, state, settings)
    _add_predictions(app, state, settings, metrics)
    V2Api(state, settings, metrics).install(app)  # the Open Inference Protocol: v2.py

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics_endpoint() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    install_openapi(app, lambda: state.model)
    # The router tries routes in order: put the ones taking the traffic first.
    app.router.routes.sort(key=lambda route: getattr(route, "path", "") not in PREDICTION_PATHS)
    return app


def from_environment() -> FastAPI:
    """The app with the environment's settings, loading MODEL_URI at startup.

    For running it under another ASGI server, e.g.
    `granian --interface asgi --factory <package>.serve.app:from_environment`: that server's
    own settings then stand for serve/server.py's deadlines, cap and drain.
    """
    return create_app(load(ServeSettings))


def _add_error_handlers(app: FastAPI) -> None:
    """Every refusal as `{"error", "detail"}` JSON; a departed client as one log line."""

    @app.exception_handler(ApiError)
    async def api_error(_: Request, error: ApiError) -> Response:
        return json_response(error.body(), error.status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        detail = f"{request.method} {request.url.path}: {error.detail}; see /docs"
        return json_response(
            {"error": str(error.detail).lower(), "detail": detail}, error.status_code
        )

    @app.exception_handler(ClientDisconnect)
    async def client_gone(request: Request, _: ClientDisconnect) -> Response:
        client = f"{request.client.host}:{request.client.port}" if request.client else "a client"
        where = f"{request.method} {request.url.path}: {client}"
        if reason := request.scope.get(BODY_TIMED_OUT):  # still there, too slow: say so, close
            log.info("%s did not send its body within BODY_TIMEOUT_SECONDS", where)
            body = orjson.dumps({"error": "request timeout", "detail": reason})
            return Response(body, 408, CLOSE, media_type="application/json")
        # Nobody reads this answer; its status is what /metrics counts. One line, no traceback.
        log.info("%s disconnected before its request was answered", where)
        return Response(status_code=CLIENT_GONE)


def _add_probes(app: FastAPI, state: ServingState, settings: ServeSettings) -> None:
    """Liveness, readiness and the model's metadata."""

    # HEAD too (same answer, no body): load balancers and uptime checks often probe with it.
    @app.head("/healthz", include_in_schema=False)
    @app.get("/healthz", summary="Liveness: 200 while the process runs")
    async def healthz() -> Response:
        return json_response({"status": "ok"})

    @app.head("/readyz", include_in_schema=False)
    @app.get(
        "/readyz", summary="Readiness: 200 once the model is loaded, 503 before or when stopping"
    )
    async def readyz() -> Response:
        if state.model is None or state.shutting_down:
            raise ApiError(503, "not ready", not_ready_reason(state, settings))
        return json_response({"status": "ready", "model_version": state.model.version})

    @app.get("/metadata", summary="The model: name, version, run, features and an example")
    async def metadata() -> Response:
        served, _ = serving(state, settings)
        return json_response(
            {
                "model_name": served.name,
                "model_version": served.version,
                "run_id": served.run_id,
                "features": [
                    {"name": f.name, "type": f.type, "required": f.required, "nullable": f.nullable}
                    for f in served.features
                ],
                # A regressor has no classes: the key is left out, not null.
                **({"classes": served.classes} if served.classes is not None else {}),
                "example": {"instances": [served.example]} if served.example else None,
                "max_batch_size": settings.max_batch_size,
                **_runtime(served),
            }
        )


def _add_predictions(
    app: FastAPI, state: ServingState, settings: ServeSettings, metrics: Metrics
) -> None:
    """/predict and MLflow's /invocations, taking the Request itself (see RawRoute)."""

    def raw_post(path: str, **options: Any) -> Callable[[Endpoint], Endpoint]:
        def register(endpoint: Endpoint) -> Endpoint:
            add_raw_route(app, path, endpoint, "POST", **options)
            return endpoint

        return register

    @raw_post(
        "/predict",
        summary="Predict a batch of rows",
        openapi_extra=REQUEST_BODY,
    )
    async def predict_endpoint(request: Request) -> Response:
        served, validator = serving(state, settings)
        rows = validator.predict_rows(await read_json(request))
        result = predict(served, rows, "/predict", metrics)
        return json_response(
            {
                "predictions": result.predictions,
                # A regressor answers predictions only.
                **(
                    {"probabilities": result.probabilities}
                    if result.probabilities is not None
                    else {}
                ),
                "model_version": served.version,
            }
        )

    @raw_post(
        "/invocations",
        summary="MLflow scoring protocol (dataframe_split, dataframe_records, instances, inputs)",
        openapi_extra=REQUEST_BODY,
    )
    async def invocations(request: Request) -> Response:
        served, validator = serving(state, settings)
        rows = validator.invocation_rows(await read_json(request))
        result = predict(served, rows, "/invocations", metrics)
        return json_response({"predictions": result.predictions})

    for endpoint in ("/predict", "/invocations"):  # 0 from the start, so alerts see the series
        metrics.non_finite.labels(endpoint)


def _runtime(served: ServedModel) -> dict[str, str]:
    """What computes the predictions, and why it is not the faster runtime when it is not."""
    runtime = {"runtime": served.runtime}
    if note := served.runtime_note:
        runtime["runtime_note"] = note
    return runtime
