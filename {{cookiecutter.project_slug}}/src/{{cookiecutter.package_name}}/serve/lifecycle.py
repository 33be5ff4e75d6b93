"""The model's life in the server: loaded at start-up on a thread, ready, then shutting down."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI

from ..config import ServeSettings
from .errors import one_line
from .metrics import Metrics
from .model import ServedModel
from .requests import RowValidator

log = logging.getLogger(__name__)


@dataclass
class ServingState:
    """What the endpoints need to know: the model once loaded, and whether we are stopping."""

    model: ServedModel | None = None
    validator: RowValidator | None = None
    load_error: str | None = None
    shutting_down: bool = False

    def mark_ready(self, model: ServedModel, max_batch_size: int) -> None:
        """Start taking predictions with `model` (readiness turns 200)."""
        self.validator = RowValidator(model.features, max_batch_size)
        self.model = model  # set last: readiness checks it

    def begin_shutdown(self) -> None:
        """Fail readiness so load balancers stop sending traffic while in-flight work drains."""
        self.shutting_down = True


def lifespan(
    state: ServingState,
    metrics: Metrics,
    settings: ServeSettings,
    model: ServedModel | None,
    loader: Callable[[str], ServedModel],
    on_load_failure: Callable[[str], None] | None,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Start-up: serve `model`, or load MODEL_URI on a thread and serve it once loaded."""

    def on_loaded(loaded: ServedModel) -> None:
        loaded.configure_thread()  # the event loop thread does the predicting
        gc.freeze()  # the loaded model is long-lived: keep it out of every future GC pass
        state.mark_ready(loaded, settings.max_batch_size)
        metrics.model_info.labels(loaded.name, loaded.version, loaded.run_id).set(1)
        metrics.drift.track(loaded.names, loaded.drift_reference)
        metrics.ready.set(1)
        log.info(
            "serving model %s version %s (run %s) from %s%s",
            loaded.name,
            loaded.version,
            loaded.run_id,
            loaded.source,
            "" if loaded.fast else " (pipeline predict path)",
        )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if model is not None:
            on_loaded(model)
            yield
            return
        loop = asyncio.get_running_loop()

        def load() -> None:
            try:
                loaded = loader(settings.model_uri)
            except Exception as error:  # any load failure is reported, then the server stops
                state.load_error = one_line(error, limit=2000)  # a path may hold a newline
                log.error("cannot load the model: %s", state.load_error)
                if on_load_failure is not None:
                    loop.call_soon_threadsafe(on_load_failure, state.load_error)
                return
            loop.call_soon_threadsafe(on_loaded, loaded)

        # A daemon thread, not the default executor: interpreter exit never waits on a load.
        threading.Thread(target=load, name="model-loader", daemon=True).start()
        yield

    return lifespan


def not_ready_reason(state: ServingState, settings: ServeSettings) -> str:
    if state.shutting_down:
        return "the server is shutting down"
    if state.load_error is not None:
        return f"loading the model failed: {state.load_error}"
    return f"the model is still loading from {settings.model_uri}"
