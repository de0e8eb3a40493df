"""The worker's web endpoint (Faust's web server): ``/health`` for readiness, ``/metrics`` for
Prometheus. Shared by both engines; the views only read the runtime, so they never block a batch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import faust

    from stream_app.runtime import Runtime

__all__ = ["attach_web"]


def attach_web(app: faust.App, runtime: Runtime) -> None:
    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        state = runtime.health()
        return web.json(state, status=200 if state["ready"] else 503)

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        return web.bytes(runtime.metrics.render(), content_type="text/plain; version=0.0.4")
