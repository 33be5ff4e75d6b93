"""What the prediction routes share: raw routes, JSON answers, the served model, predicting."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute

from ..config import ServeSettings
from .errors import ApiError
from .lifecycle import ServingState, not_ready_reason
from .metrics import Metrics
from .model import NonFinitePredictionError, Prediction, ServedModel
from .requests import Rows, RowValidator

Endpoint = Callable[[Request], Coroutine[Any, Any, Response]]
# A JSON body; its schema comes from the loaded model's signature (openapi.py).
REQUEST_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {}}}}}


def json_response(content: Any, status: int = 200) -> Response:
    """A compact JSON response (skips FastAPI's slower generic encoder)."""
    return Response(orjson.dumps(content), status, media_type="application/json")


class RawRoute(APIRoute):
    """A route whose endpoint takes the Request and returns the Response itself.

    Listed in the OpenAPI docs like any route, but requests skip FastAPI's per-request
    dependency solving: the endpoint reads and checks the body itself (requests.py).
    """

    def get_route_handler(self) -> Endpoint:
        handler: Endpoint = self.endpoint
        return handler


def add_raw_route(app: FastAPI, path: str, endpoint: Endpoint, method: str, **options: Any) -> None:
    """Register `endpoint` (taking the Request, see RawRoute) for `method` on `path`."""
    app.router.add_api_route(
        path, endpoint, methods=[method], route_class_override=RawRoute, **options
    )


def serving(state: ServingState, settings: ServeSettings) -> tuple[ServedModel, RowValidator]:
    """The loaded model and its row checks, or a 503 saying why there is none yet."""
    if state.model is None or state.validator is None:
        raise ApiError(503, "model not ready", not_ready_reason(state, settings))
    return state.model, state.validator


def predict(served: ServedModel, rows: Rows, endpoint: str, metrics: Metrics) -> Prediction:
    """Predict `rows`; a 422 where the model refuses them or computes a non-finite value."""
    try:
        result = served.predict(rows)
    except NonFinitePredictionError as error:  # finite inputs far outside the training data
        metrics.non_finite.labels(endpoint).inc(len(error.rows))
        raise ApiError(
            422,
            "prediction out of range",
            f"the model's result is NaN or infinite for row(s) {error.rows[:20]}; "
            "their values are too far outside the training data",
        ) from None
    except (ValueError, TypeError) as error:  # the input passed the signature check
        raise ApiError(422, "the model rejected the input", str(error)) from None
    metrics.predicted(endpoint, len(rows))
    metrics.drift.observe(rows)
    if result.probabilities is not None:  # a classifier: count the mix of classes
        metrics.predicted_classes(result.predictions)
    return result
