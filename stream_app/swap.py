"""The model a worker labels with, where it comes from at start, and how it is hot-swapped.

* ``ModelHolder`` keeps the current model behind one reference: a batch reads it once and labels
  everything with it, and a swap replaces the reference between two reads, so no batch mixes
  versions. A candidate is validated before it is offered; a broken model never replaces a working
  one.
* ``initial_model`` resolves registry champion → on-disk cache → vendor centroids (version 0).
* ``ModelWatcher`` is a thread with its own Kafka consumer *outside* the labellers' consumer group
  (manual assignment of the 1-partition model-updates topic, from its end), so every worker sees
  every update; it also re-checks the registry champion periodically in case an update was missed.
  Loading (MLflow download, JSON, validation) happens on this thread, never on the hot path.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from personas.catalogue import load_vendor_catalogue
from personas.errors import InvalidModel, PersonaError, ServiceUnavailable
from personas.model import CentroidModel
from personas.schemas import ModelUpdated
from personas.settings import Settings

if TYPE_CHECKING:
    from stream_app.metrics import StreamMetrics

__all__ = ["ModelCache", "ModelHolder", "ModelWatcher", "check_candidate", "initial_model"]

log = logging.getLogger(__name__)

#: A loader returns the registered model of a version (raises InvalidModel/ServiceUnavailable).
VersionLoader = Callable[[int], CentroidModel]
ChampionLookup = Callable[[], "int | None"]


def check_candidate(
    candidate: CentroidModel, current: CentroidModel | None, *, allow_new_personas: bool
) -> None:
    """Raise InvalidModel unless the candidate can safely replace the current model."""
    known: set[int] | None = None
    if not allow_new_personas:
        known = set(load_vendor_catalogue().ids)
        if current is not None:
            known |= set(current.persona_ids)
        # Ids a person approved (`persona train accept`), written into the model by the trainer.
        approved = candidate.metadata.get("approved_new_personas") or []
        known |= {int(pid) for pid in approved if isinstance(pid, int)}
    candidate.validate(known_persona_ids=known)
    # Behavioural check: each centroid must be labelled as its own persona at distance 0.
    labels = candidate.label(candidate.centroids)
    if not np.array_equal(labels.persona_id, np.asarray(candidate.persona_ids)):
        raise InvalidModel("centroids are not labelled as their own persona (duplicates?)")


class ModelHolder:
    """The current model; ``offer`` validates and swaps atomically, ``current`` is lock-free."""

    def __init__(
        self,
        model: CentroidModel,
        *,
        allow_new_personas: bool = False,
        metrics: StreamMetrics | None = None,
        cache: ModelCache | None = None,
    ) -> None:
        self._model = model
        self._allow_new = allow_new_personas
        self._metrics = metrics
        self._cache = cache
        self._lock = threading.Lock()
        self.refused_versions: set[int] = set()
        if metrics is not None:
            metrics.model_version.set(model.version)

    @property
    def current(self) -> CentroidModel:
        return self._model

    def offer(self, candidate: CentroidModel, source: str) -> bool:
        """Swap to the candidate if it is valid; return whether it is now the current model."""
        with self._lock:
            current = self._model
            try:
                check_candidate(candidate, current, allow_new_personas=self._allow_new)
            except InvalidModel as exc:
                self.refuse(candidate.version, f"{exc}", source)
                return False
            self._model = candidate  # one reference assignment: atomic for readers
        log.info(
            "hot swap: model version %s -> %s (from %s)", current.version, candidate.version, source
        )
        if self._metrics is not None:
            self._metrics.model_version.set(candidate.version)
            self._metrics.model_swaps.labels(result="applied").inc()
        if self._cache is not None:
            self._cache.save(candidate)
        return True

    def refuse(self, version: int, reason: str, source: str) -> None:
        self.refused_versions.add(version)
        log.error(
            "refused model version %s from %s: %s; still labelling with version %s",
            version,
            source,
            reason,
            self._model.version,
        )
        if self._metrics is not None:
            self._metrics.model_swaps.labels(result="refused").inc()


class ModelCache:
    """The last good model on disk (CentroidModel.to_dict JSON), for starts while MLflow is down."""

    def __init__(self, directory: Path, model_name: str) -> None:
        self.path = directory / f"{model_name}.json"

    def save(self, model: CentroidModel) -> None:
        if model.version == 0:
            return  # the vendor model is always available; cache only registry models
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(model.to_dict()))
            tmp.replace(self.path)
        except OSError as exc:
            log.warning("could not cache model version %s at %s: %s", model.version, self.path, exc)

    def load(self) -> CentroidModel | None:
        try:
            return CentroidModel.from_dict(json.loads(self.path.read_text()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, InvalidModel) as exc:
            log.warning("ignoring unreadable model cache %s: %s", self.path, exc)
            return None


def initial_model(
    settings: Settings, cache: ModelCache, *, load_champion: Callable[[], Any] | None = None
) -> tuple[CentroidModel, str]:
    """Registry champion, else the cached model, else vendor centroids; returns (model, source)."""
    if load_champion is None:
        from personas import registry

        def load_champion() -> CentroidModel | None:
            return registry.load_champion(settings)

    try:
        model = load_champion()
    except ServiceUnavailable as exc:
        log.warning("model registry unavailable (%s); trying the on-disk cache", exc)
        cached = cache.load()
        if cached is not None:
            return cached, f"on-disk cache {cache.path} (registry unreachable)"
        return _vendor(), "vendor centroids (registry unreachable, no cached model)"
    except InvalidModel as exc:
        log.error("registry champion is not a usable model: %s", exc)
        cached = cache.load()
        if cached is not None:
            return cached, f"on-disk cache {cache.path} (champion invalid)"
        return _vendor(), "vendor centroids (champion invalid, no cached model)"
    if model is None:
        return _vendor(), f"vendor centroids (no '{settings.champion_alias}' registered)"
    check_candidate(model, None, allow_new_personas=True)
    cache.save(model)
    return model, f"registry {settings.model_name}@{settings.champion_alias}"


def _vendor() -> CentroidModel:
    return CentroidModel.from_catalogue(load_vendor_catalogue())


class ModelWatcher(threading.Thread):
    """Follows model-updates (no consumer group) and polls the registry; offers new models."""

    def __init__(
        self,
        settings: Settings,
        holder: ModelHolder,
        *,
        poll_seconds: float,
        load_version: VersionLoader | None = None,
        champion: ChampionLookup | None = None,
    ) -> None:
        super().__init__(name="model-watcher", daemon=True)
        self.settings = settings
        self.holder = holder
        self.poll_seconds = poll_seconds
        self._load_version = load_version or self._registry_load
        self._champion = champion or self._registry_champion
        self._stop = threading.Event()
        self.assigned = threading.Event()
        self._pending: int | None = None

    def _registry_load(self, version: int) -> CentroidModel:
        from personas import registry

        return registry.load_version(self.settings, version)

    def _registry_champion(self) -> int | None:
        from personas import registry

        return registry.champion_version(self.settings)

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        from confluent_kafka import Consumer, KafkaException, TopicPartition

        from personas.kafka import consumer_config

        topic = self.settings.topics.model_updates
        consumer = Consumer(
            consumer_config(
                self.settings,
                f"persona-stream-swap-{uuid.uuid4().hex}",
                **{"enable.partition.eof": False, "session.timeout.ms": 10_000},
            )
        )
        try:
            while not self._stop.is_set():
                try:
                    _, high = consumer.get_watermark_offsets(
                        TopicPartition(topic, 0), timeout=5, cached=False
                    )
                    consumer.assign([TopicPartition(topic, 0, high)])
                    break
                except KafkaException as exc:
                    log.warning("waiting for topic %s: %s", topic, exc)
                    self._stop.wait(2)
            if self._stop.is_set():
                return  # stopped before the topic answered: never positioned, nothing to follow
            self.assigned.set()
            log.info("following %s from offset %s (outside the consumer group)", topic, high)
            next_check = time.monotonic() + self.poll_seconds
            while not self._stop.is_set():
                msg = consumer.poll(0.5)
                if msg is not None and msg.error() is None:
                    self.on_update(msg.value())
                if self._pending is not None or time.monotonic() >= next_check:
                    next_check = time.monotonic() + self.poll_seconds
                    self.check_registry()
        finally:
            consumer.close()

    def on_update(self, raw: bytes | None) -> None:
        """Handle one model-updates message (ignores other models and other aliases)."""
        try:
            update = ModelUpdated.model_validate_json(raw or b"")
        except ValueError as exc:
            log.warning("ignoring unreadable model-updates message: %s", str(exc).splitlines()[0])
            return
        if update.model_name != self.settings.model_name:
            return
        if update.alias != self.settings.champion_alias:
            log.info("ignoring update of alias %s (version %s)", update.alias, update.version)
            return
        self.consider(update.version, f"model-updates ({update.model_name} v{update.version})")

    def check_registry(self) -> None:
        try:
            version = self._champion()
        except PersonaError as exc:
            log.warning("registry check failed: %s", exc)
            return
        if version is None:
            self._pending = None
            return
        self.consider(version, "registry poll")

    def consider(self, version: int, source: str) -> None:
        if version == self.holder.current.version:
            self._pending = None
            return
        if version in self.holder.refused_versions:
            return
        try:
            candidate = self._load_version(version)
        except InvalidModel as exc:
            self._pending = None
            self.holder.refuse(version, str(exc), source)
            return
        except PersonaError as exc:
            log.warning("cannot load model version %s yet (%s); will retry", version, exc)
            self._pending = version
            return
        self._pending = None
        self.holder.offer(candidate, source)
