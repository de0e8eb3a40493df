"""The model a serving worker labels with, following the registry's champion alias.

Why this shape: a request must never wait on MLflow, and a broken or unreachable registry must
never take a working model away. So every worker holds one immutable ``LoadedModel`` and replaces
the reference atomically; a background thread polls ``champion_version`` (8 ms per call, cheap
enough to poll every few seconds) and is woken early by a ``ModelUpdated`` on the model-updates
topic. The registry alias is the single truth: a Kafka message only says "look now".

Start-up order (the same fallbacks as the stream app): the registry's champion; if the registry
does not answer, the last champion this machine saw (a JSON copy on disk); else the vendor
centroids as version 0. If the registry answers and has no champion yet, the vendor model is
right (a stale disk copy would be a model the registry no longer vouches for).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from personas.catalogue import load_vendor_catalogue
from personas.errors import InvalidModel, PersonaError, ServiceUnavailable
from personas.model import CentroidModel
from personas.settings import Settings

__all__ = [
    "HolderStatus",
    "LoadedModel",
    "MlflowRegistry",
    "ModelHolder",
    "Registry",
    "model_document",
]

log = logging.getLogger(__name__)


class Registry(Protocol):
    """What the holder needs from the registry (``personas.registry`` in production)."""

    def champion_version(self, settings: Settings) -> int | None: ...

    def load_version(self, settings: Settings, version: int) -> CentroidModel: ...


class MlflowRegistry:
    """The real registry: ``personas.registry`` (imports MLflow on first use)."""

    def champion_version(self, settings: Settings) -> int | None:
        from personas import registry

        return registry.champion_version(settings)

    def load_version(self, settings: Settings, version: int) -> CentroidModel:
        from personas import registry

        return registry.load_version(settings, version)


@dataclass(frozen=True)
class LoadedModel:
    model: CentroidModel
    source: str  # registry | cache | vendor
    loaded_at: datetime


@dataclass(frozen=True)
class HolderStatus:
    registry_reachable: bool | None
    last_checked_at: datetime | None
    last_error: str | None


def _now() -> datetime:
    return datetime.now(UTC)


class ModelHolder:
    """One per worker process: ``current`` is always a validated model, swapped atomically."""

    def __init__(
        self,
        settings: Settings,
        *,
        cache_dir: Path,
        poll_interval_s: float,
        registry: Registry | None = None,
        listener: Callable[[ModelHolder], threading.Thread | None] | None = None,
    ) -> None:
        self.settings = settings
        self.cache_path = cache_dir / f"{settings.model_name}.json"
        self.poll_interval_s = poll_interval_s
        self.registry: Registry = registry or MlflowRegistry()
        self._listener = listener
        self._current: LoadedModel | None = None
        self._status = HolderStatus(None, None, None)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one refresh at a time (poller and first load)
        self._threads: list[threading.Thread] = []
        self._rejected: set[int] = set()

    # -- reading ---------------------------------------------------------------------------
    @property
    def current(self) -> LoadedModel:
        loaded = self._current
        if loaded is None:
            raise RuntimeError("ModelHolder.start() was not called")
        return loaded

    @property
    def status(self) -> HolderStatus:
        return self._status

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, *, background: bool = True) -> ModelHolder:
        """Load the first model (bounded by the registry timeout), then follow the alias."""
        self._initial_load()
        if background:
            poller = threading.Thread(target=self._poll_loop, name="champion-poller", daemon=True)
            poller.start()
            self._threads.append(poller)
            if self._listener is not None:
                thread = self._listener(self)
                if thread is not None:
                    self._threads.append(thread)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def sleep(self, seconds: float) -> bool:
        """Wait up to ``seconds``; True as soon as the holder is stopping (for helper threads)."""
        return self._stop.wait(seconds)

    def wake(self) -> None:
        """Check the alias now (called when a ModelUpdated arrives)."""
        self._wake.set()

    # -- loading ---------------------------------------------------------------------------
    def _initial_load(self) -> None:
        with self._lock:
            try:
                version = self.registry.champion_version(self.settings)
            except Exception as exc:
                self._record(False, exc)
                self._current = self._fallback()
                log.warning("registry unavailable (%s); serving %s", exc, self._describe())
                return
            self._record(True, None)
            if version is None:
                self._current = self._vendor()
                log.info(
                    "no champion for %s; serving %s", self.settings.model_name, self._describe()
                )
                return
            try:
                self._swap_to(version)
            except Exception as exc:
                self._note_failure(version, exc)
                self._current = self._fallback()

    def refresh(self) -> bool:
        """Follow the alias once; True when the served model changed. Never raises."""
        with self._lock:
            try:
                version = self.registry.champion_version(self.settings)
            except Exception as exc:
                self._record(False, exc)
                return False
            self._record(True, None)
            current = self._current
            if version is None or version in self._rejected:
                return False  # no alias (yet, or deleted): keep what we serve
            serving_it = current is not None and current.source == "registry"
            if serving_it and current.model.version == version:  # type: ignore[union-attr]
                return False
            try:
                self._swap_to(version)
            except Exception as exc:
                self._note_failure(version, exc)
                return False
            return True

    def _note_failure(self, version: int, exc: Exception) -> None:
        """A model that fails validation is remembered and not retried; an outage is retried."""
        unreachable = isinstance(exc, ServiceUnavailable) or not isinstance(exc, PersonaError)
        self._record(not unreachable, exc)
        if not unreachable:
            self._rejected.add(version)
        log.error("champion v%s not loaded, serving %s: %s", version, self._describe(), exc)

    def _swap_to(self, version: int) -> None:
        model = self.registry.load_version(self.settings, version)
        model.validate()
        previous = self._current
        self._current = LoadedModel(model, "registry", _now())
        self._write_cache(model)
        log.info(
            "serving %s v%s (was %s)",
            self.settings.model_name,
            version,
            "nothing" if previous is None else f"v{previous.model.version} ({previous.source})",
        )

    def _record(self, reachable: bool, exc: Exception | None) -> None:
        """Remember the outcome; log only when reachability changes (no log line per poll)."""
        before = self._status.registry_reachable
        self._status = HolderStatus(reachable, _now(), None if exc is None else str(exc)[:300])
        if before is True and not reachable:
            log.warning("registry unreachable, still serving %s: %s", self._describe(), exc)
        elif before is False and reachable:
            log.info("registry reachable again")

    def _describe(self) -> str:
        loaded = self._current
        return "nothing" if loaded is None else f"v{loaded.model.version} ({loaded.source})"

    def _fallback(self) -> LoadedModel:
        cached = self._read_cache()
        return cached if cached is not None else self._vendor()

    def _vendor(self) -> LoadedModel:
        return LoadedModel(CentroidModel.from_catalogue(load_vendor_catalogue()), "vendor", _now())

    def _read_cache(self) -> LoadedModel | None:
        try:
            document = json.loads(self.cache_path.read_text())
            return LoadedModel(CentroidModel.from_dict(document), "cache", _now())
        except FileNotFoundError:
            return None
        except (OSError, ValueError, InvalidModel) as exc:
            log.warning("ignoring unreadable model cache %s: %s", self.cache_path, exc)
            return None

    def _write_cache(self, model: CentroidModel) -> None:
        """Atomic (write + rename) so concurrent workers never leave a half-written file."""
        try:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.cache_path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_text(json.dumps(model.to_dict()))
            tmp.replace(self.cache_path)
        except OSError as exc:
            log.warning("cannot write model cache %s: %s", self.cache_path, exc)

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_interval_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.refresh()
            except Exception:
                log.exception("unexpected error while following the champion alias")


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
