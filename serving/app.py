"""The WSGI application: ``POST /predict``, ``GET /health``, ``GET /model``, ``GET /openapi.json``,
``GET /metrics`` (Prometheus, summed over Gunicorn's workers: serving/metrics.py).

Plain WSGI on purpose: six routes need no framework, Gunicorn runs it directly, and the request
path stays short (parse JSON → one pydantic validation → one vectorised ``CentroidModel.label``).
Every request labels its whole batch with the one model the holder held when it arrived, so a
hot swap never mixes versions inside a response. Bad input is a 4xx with a readable reason; an
unexpected error is caught and answered as a JSON 500, never a traceback to the client.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from personas.champion import ChampionFollower, LoadedModel, OnSwap, Registry
from personas.settings import Settings
from serving.metrics import ServeMetrics
from serving.schemas import ErrorDetail, InvalidRequest, parse_predict_body
from serving.settings import ServeSettings

__all__ = [
    "UPDATES_GROUP_PREFIX",
    "PredictionApp",
    "create_app",
    "follow_champion",
    "model_document",
]

log = logging.getLogger(__name__)

#: Group ids of each worker's model-updates listener (under the service's ACL prefix).
UPDATES_GROUP_PREFIX = "persona-serve"

StartResponse = Callable[..., Any]
Response = tuple[int, dict[str, Any] | bytes, dict[str, str]]


class PredictionApp:
    """A WSGI callable bound to one ChampionFollower (one per worker process)."""

    def __init__(
        self,
        holder: ChampionFollower,
        settings: Settings,
        serve: ServeSettings,
        metrics: ServeMetrics | None = None,
    ) -> None:
        self.holder = holder
        self.settings = settings
        self.serve = serve
        self.metrics = metrics or ServeMetrics()
        self.metrics.model_swapped(holder.loaded)
        self._routes: dict[tuple[str, str], Callable[[dict[str, Any]], Response]] = {
            ("GET", "/"): self._index,
            ("GET", "/health"): self._health,
            ("GET", "/model"): self._model,
            ("GET", "/openapi.json"): self._openapi,
            ("GET", "/metrics"): self._metrics,
            ("POST", "/predict"): self._predict,
        }
        self._openapi_bytes: bytes | None = None

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO", "/") or "/"
        if len(path) > 1:
            path = path.rstrip("/")
        try:
            status, payload, headers = self._dispatch(method, path, environ)
        except Exception:
            log.exception("unhandled error on %s %s", method, path)
            status, payload, headers = _error(500, "internal_error", "unexpected server error")
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers.setdefault("Content-Type", "application/json")
        start_response(
            f"{status} {HTTPStatus(status).phrase}",
            [("Content-Length", str(len(body))), *headers.items()],
        )
        # One series per route we serve; anything else is "other" (a scanner must not be able
        # to create a series per path it tries).
        route = path if (method, path) in self._routes else "other"
        self.metrics.answered(route, status, started)
        return [body]

    def _dispatch(self, method: str, path: str, environ: dict[str, Any]) -> Response:
        handler = self._routes.get((method, path))
        if handler is not None:
            return handler(environ)
        allowed = sorted(m for (m, p) in self._routes if p == path)
        if allowed:
            status, payload, headers = _error(
                405, "method_not_allowed", f"{method} is not allowed on {path}; use {allowed[0]}"
            )
            return status, payload, {**headers, "Allow": ", ".join(allowed)}
        return _error(404, "not_found", f"no route {path}; see /openapi.json")

    # -- routes ------------------------------------------------------------------------------
    def _index(self, environ: dict[str, Any]) -> Response:
        return 200, {"service": "persona-serve", "routes": sorted(p for _, p in self._routes)}, {}

    def _health(self, environ: dict[str, Any]) -> Response:
        loaded = self.holder.loaded
        status = self.holder.status
        healthy = status.registry_reachable is not False
        payload = {
            "status": "ok" if healthy else "degraded",
            "model_loaded": True,
            "model_version": loaded.model.version,
            "model_source": loaded.source,
            "registry_reachable": status.registry_reachable,
            "last_checked_at": _iso(status.last_checked_at),
            "last_error": status.last_error,
            "pid": os.getpid(),
        }
        return 200, payload, {}

    def _model(self, environ: dict[str, Any]) -> Response:
        loaded = self.holder.loaded
        payload = {
            "model_name": self.settings.model_name,
            "alias": self.settings.champion_alias,
            **model_document(loaded),
        }
        return 200, payload, {"X-Model-Version": str(loaded.model.version)}

    def _openapi(self, environ: dict[str, Any]) -> Response:
        if self._openapi_bytes is None:
            from serving.openapi import build_openapi

            self._openapi_bytes = json.dumps(build_openapi(self.serve)).encode()
        return 200, self._openapi_bytes, {}

    def _metrics(self, environ: dict[str, Any]) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        return 200, self.metrics.exposition(), {"Content-Type": CONTENT_TYPE_LATEST}

    def _predict(self, environ: dict[str, Any]) -> Response:
        try:
            raw = _read_body(environ, self.serve.max_body_bytes)
            try:
                data = json.loads(raw)
            except ValueError as exc:  # includes UnicodeDecodeError
                raise InvalidRequest(f"the body is not valid JSON: {exc}") from None
            except RecursionError:
                raise InvalidRequest(
                    "the body is nested too deeply to be a prediction request"
                ) from None
            batch = parse_predict_body(data, self.serve.max_batch)
        except InvalidRequest as exc:
            errors = [e.model_dump() for e in exc.errors]
            return _error(exc.status, "invalid_request", exc.detail, errors)
        model = self.holder.current  # one model for the whole batch, even during a swap
        labels = model.label(batch.features)
        names = model.persona_names
        version = model.version
        predictions = [
            {
                "id": record_id,
                "persona_id": persona_id,
                "persona_name": names[index],
                "distance": distance,
                "margin": margin,
                "is_outlier": outlier,
                "model_version": version,
            }
            for record_id, index, persona_id, distance, margin, outlier in zip(
                batch.ids,
                labels.index.tolist(),
                labels.persona_id.tolist(),
                labels.distance.tolist(),
                labels.margin.tolist(),
                labels.is_outlier.tolist(),
                strict=True,
            )
        ]
        self.metrics.records.inc(len(predictions))
        payload = {"model_version": version, "count": len(predictions), "predictions": predictions}
        return 200, payload, {"X-Model-Version": str(version)}


def model_document(loaded: LoadedModel) -> dict[str, Any]:
    """The model as GET /model shows it."""
    model = loaded.model
    return {
        "version": model.version,
        "source": loaded.source,
        "loaded_at": loaded.loaded_at.isoformat(),
        "feature_names": list(model.feature_names),
        "persona_ids": list(model.persona_ids),
        "persona_names": list(model.persona_names),
        "centroids": model.centroids.tolist(),
        "outlier_distance": model.outlier_distance,
        "metadata": model.metadata,
    }


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def _error(
    status: int, code: str, detail: str, errors: list[dict[str, Any]] | None = None
) -> Response:
    return status, {"error": code, "detail": detail, "errors": errors or []}, {}


def _read_body(environ: dict[str, Any], limit: int) -> bytes:
    """Read at most ``limit`` bytes; a larger body is refused before it is read (413)."""
    too_big = InvalidRequest(
        f"the body is larger than {limit} bytes; send smaller batches", status=413
    )
    length_header = environ.get("CONTENT_LENGTH") or ""
    stream = environ["wsgi.input"]
    if length_header:
        try:
            length = int(length_header)
        except ValueError:
            raise InvalidRequest(
                "Content-Length is not a number",
                [ErrorDetail(loc="headers", msg="bad length")],
                status=400,
            ) from None
        if length > limit:
            raise too_big
        raw: bytes = stream.read(length)
    else:  # chunked or unknown length: read one byte past the limit to detect excess
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise too_big
    if not raw.strip():
        raise InvalidRequest("the body is empty: send JSON records")
    return raw


def follow_champion(
    settings: Settings,
    serve: ServeSettings,
    *,
    registry: Registry | None = None,
    on_swap: OnSwap | None = None,
) -> ChampionFollower:
    """This worker's follower (nothing loaded or started yet): the stream worker's component with
    the service's poll interval, cache and listener group. ``registry`` is MLflow unless a test
    gives a fake."""
    return ChampionFollower(
        settings,
        registry=registry,
        cache_dir=serve.cache_dir,
        poll_interval_s=serve.poll_interval_s,
        allow_new_personas=settings.allow_new_personas,
        updates_group_prefix=(
            f"{UPDATES_GROUP_PREFIX}-{os.getpid()}" if serve.follow_updates_topic else None
        ),
        on_swap=on_swap,
    )


def create_app(
    settings: Settings,
    serve: ServeSettings,
    *,
    holder: ChampionFollower | None = None,
    background: bool = True,
) -> PredictionApp:
    """Build the app and load its first model (the registry, else the disk cache, else vendor);
    the follower is the stream worker's too, so REST accepts exactly the models the stream does."""
    metrics = ServeMetrics()
    if holder is None:
        holder = follow_champion(settings, serve, on_swap=metrics.model_swapped)
        holder.start(background=background)
    return PredictionApp(holder, settings, serve, metrics)
