"""Follow the registry's champion alias: the one model a process labels with, swapped atomically.

Used by the stream worker and by every REST worker, so both accept exactly the same models
(``acceptance.check_candidate``) and follow the alias the same way. Why this shape:

* **Reading never waits.** ``current`` is one reference to an immutable model; a swap replaces
  the reference between two reads, so a batch (or a request) read once is labelled by one version.
  Loading — MLflow download, JSON, validation — happens on the follower's thread, never on the
  hot path.
* **A broken or unreachable registry never takes a working model away.** A model that fails
  ``check_candidate`` (or cannot be parsed) is refused, reported and never downloaded again; an
  outage (``ServiceUnavailable``) keeps the current model and is retried after
  ``retry_interval_s``. Only those errors are expected here: anything else is a bug, raised from
  ``load``/``refresh`` and logged with its traceback by the follower's thread — never reported
  as "registry unreachable" (which would send an operator to look at a healthy MLflow).
* **The alias is the single truth; a model-updates message only says "look now".** On a message
  (and on every poll) the follower asks the registry where the alias points and goes there; the
  version written in the message is not used. The other rule one could pick, "never move
  backwards", was rejected: an operator's rollback *is* an alias moving backwards and must be
  followed (the monitor, which reads the alias at every window close, already follows it), and a
  late, duplicated or out-of-order message cannot move anyone back anyway, because by the time
  it is handled the alias says where to be. Messages are also optional: without Kafka the poll
  alone reaches the same model within one ``poll_interval_s``.
* **Start-up** (the same for both services): the champion; if the registry does not answer or
  its champion is unusable, the last champion this machine loaded (``cache.ModelCache``); else
  the vendor centroids as version 0. If the registry answers and has no champion, the vendor
  model is right (a stale disk copy is a model the registry no longer vouches for). The first
  model — from the registry or the cache — passes the same ``check_candidate`` as every later
  one: the rule depends on the candidate alone (its lineage carries its approvals), so a worker
  that starts today accepts exactly what a worker that has run for a month accepts.

Service-specific needs go through parameters: the stream's metrics through ``on_swap`` /
``on_refuse``, REST's readiness through ``status``; ``updates_group_prefix`` is the service's
Kafka ACL prefix (None: poll only).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Protocol

from personas import registry as mlflow_registry
from personas.catalogue import load_vendor_catalogue
from personas.champion.acceptance import check_candidate
from personas.champion.cache import ModelCache
from personas.champion.watcher import ChampionWatcher
from personas.errors import InvalidModel, PersonaError, ServiceUnavailable
from personas.model import CentroidModel
from personas.settings import Settings

__all__ = [
    "ChampionFollower",
    "FollowerStatus",
    "LoadedModel",
    "ModelOrigin",
    "OnRefuse",
    "OnSwap",
    "Registry",
]

log = logging.getLogger(__name__)

#: Where the model a follower holds came from: the registry, this machine's cache, or the vendor.
ModelOrigin = Literal["registry", "cache", "vendor"]


class Registry(Protocol):
    """What the follower needs from the registry: ``personas.registry`` itself in production."""

    def champion_version(self, settings: Settings) -> int | None: ...

    def load_version(self, settings: Settings, version: int) -> CentroidModel: ...


@dataclass(frozen=True)
class LoadedModel:
    """The current model and where it came from (``description`` is for logs and /health)."""

    model: CentroidModel
    source: ModelOrigin
    loaded_at: datetime
    description: str


@dataclass(frozen=True)
class FollowerStatus:
    """The latest registry check: reachable (None before the first), when, and what went wrong."""

    registry_reachable: bool | None
    last_checked_at: datetime | None
    last_error: str | None


#: Called with (new current, previous) whenever the current model changes; previous is None for
#: the first model of the process.
OnSwap = Callable[[LoadedModel, "LoadedModel | None"], None]
#: Called with (version, reason) when a version is refused.
OnRefuse = Callable[[int, str], None]


def _now() -> datetime:
    return datetime.now(UTC)


class ChampionFollower:
    """One per process: ``current`` is always an accepted model; ``refresh`` follows the alias."""

    def __init__(
        self,
        settings: Settings,
        *,
        cache_dir: Path,
        poll_interval_s: float,
        registry: Registry | None = None,
        allow_new_personas: bool = False,
        updates_group_prefix: str | None = None,
        retry_interval_s: float = 1.0,
        on_swap: OnSwap | None = None,
        on_refuse: OnRefuse | None = None,
    ) -> None:
        self.settings = settings
        self.registry: Registry = registry if registry is not None else mlflow_registry
        self.cache = ModelCache(cache_dir, settings.model_name)
        self._allow_new = allow_new_personas
        self._on_swap = on_swap
        self._on_refuse = on_refuse
        self._loaded: LoadedModel | None = None
        self._status = FollowerStatus(None, None, None)
        self._refused: dict[int, str] = {}  # version → why (never downloaded again)
        self._pending: int | None = None  # a champion whose download hit an outage
        self._lock = threading.Lock()  # one load/refresh/offer at a time; reads take no lock
        #: The background threads (poller, model-updates listener); started by ``start``.
        self.watcher = ChampionWatcher(
            self,
            poll_interval_s=poll_interval_s,
            retry_interval_s=retry_interval_s,
            updates_group_prefix=updates_group_prefix,
        )

    # -- reading (any thread, lock-free) ---------------------------------------------------
    @property
    def loaded(self) -> LoadedModel:
        loaded = self._loaded
        if loaded is None:
            raise RuntimeError("ChampionFollower.load() (or start()) was not called")
        return loaded

    @property
    def current(self) -> CentroidModel:
        """The model to label with; read it once per batch or request."""
        return self.loaded.model

    @property
    def status(self) -> FollowerStatus:
        return self._status

    @property
    def refused_versions(self) -> frozenset[int]:
        return frozenset(self._refused)  # a copy: the follower's thread may add while you read

    @property
    def retry_due(self) -> bool:
        """A champion could not be downloaded because of an outage: retry soon, not at the poll."""
        return self._pending is not None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, *, background: bool = True) -> ChampionFollower:
        """Load the first model (bounded by the registry timeout), then follow the alias."""
        self.load()
        if background:
            self.watcher.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self.watcher.stop(timeout)

    def wake(self, source: str = "model-updates") -> None:
        """Check the alias now (what a ModelUpdated does)."""
        self.watcher.wake(source)

    # -- following -------------------------------------------------------------------------
    def load(self) -> LoadedModel:
        """The first model: champion → disk cache → vendor. Outages and refusals fall back;
        anything else is a bug and raises. A second call returns the model already loaded."""
        with self._lock:
            if self._loaded is None:
                self._become(self._first_model(), None, "start")
            return self.loaded

    def refresh(self, source: str = "registry poll") -> bool:
        """Follow the alias once; True when the current model changed. Outages and refused
        models return False (and show in ``status``); an unexpected exception is a bug: raised."""
        with self._lock:
            current = self.loaded
            try:
                version = self.registry.champion_version(self.settings)
            except PersonaError as exc:
                self._failed(exc)
                return False
            if version is not None and version in self._refused:
                self._pending = None  # the alias still points at a refused model: keep saying so
                self._record(True, self._refusal(version))
                return False
            if version is None or (
                current.source == "registry" and current.model.version == version
            ):
                self._pending = None  # no alias (yet, or deleted), or already current: keep it
                self._record(True, None)
                return False
            try:
                candidate = self.registry.load_version(self.settings, version)
            except InvalidModel as exc:
                self._pending = None
                self._refuse(version, str(exc), source)
                return False
            except PersonaError as exc:
                if self._pending != version:  # once per version, not once per retry
                    log.warning("cannot load model version %s yet (%s); will retry", version, exc)
                self._pending = version
                self._failed(exc)
                return False
            self._pending = None
            self._record(True, None)
            return self._offer(candidate, source)

    def offer(self, candidate: CentroidModel, source: str) -> bool:
        """Swap to ``candidate`` (a registry model in hand) if it is acceptable; True if it is now
        the current model. ``refresh`` uses it after a download."""
        with self._lock:
            return self._offer(candidate, source)

    # -- internals (called with the lock held) ---------------------------------------------
    def _first_model(self) -> LoadedModel:
        name, alias = self.settings.model_name, self.settings.champion_alias
        try:
            version = self.registry.champion_version(self.settings)
        except PersonaError as exc:
            self._failed(exc)
            return self._fallback("registry unreachable")
        self._record(True, None)
        if version is None:
            return self._vendor(f"no '{alias}' registered")
        try:
            model = self.registry.load_version(self.settings, version)
            check_candidate(model, allow_new_personas=self._allow_new)
        except InvalidModel as exc:
            self._refuse(version, str(exc), "start")
            return self._fallback("champion invalid")
        except PersonaError as exc:
            self._pending = version
            self._failed(exc)
            return self._fallback("registry unreachable")
        return LoadedModel(model, "registry", _now(), f"registry {name}@{alias}")

    def _offer(self, candidate: CentroidModel, source: str) -> bool:
        current = self.loaded
        try:
            check_candidate(candidate, allow_new_personas=self._allow_new)
        except InvalidModel as exc:
            self._refuse(candidate.version, str(exc), source)
            return False
        name, alias = self.settings.model_name, self.settings.champion_alias
        self._become(
            LoadedModel(candidate, "registry", _now(), f"registry {name}@{alias}"), current, source
        )
        return True

    def _become(self, loaded: LoadedModel, previous: LoadedModel | None, source: str) -> None:
        self._loaded = loaded  # one reference assignment: atomic for readers
        if previous is None:
            log.info(
                "%s: using model version %s from %s",
                self.settings.model_name,
                loaded.model.version,
                loaded.description,
            )
        else:
            log.info(
                "hot swap: model version %s -> %s (from %s; was %s)",
                previous.model.version,
                loaded.model.version,
                source,
                previous.source,
            )
        if loaded.source == "registry":
            self.cache.save(loaded.model)
        if self._on_swap is not None:
            self._on_swap(loaded, previous)

    def _refuse(self, version: int, reason: str, source: str) -> None:
        """A model that is not usable is remembered and never downloaded again."""
        self._refused[version] = reason
        self._record(True, self._refusal(version))
        log.error(
            "refused model version %s from %s: %s; still using %s",
            version,
            source,
            reason,
            self._describe(),
        )
        if self._on_refuse is not None:
            self._on_refuse(version, reason)

    def _refusal(self, version: int) -> str:
        return f"champion version {version} refused: {self._refused[version]}"

    def _failed(self, exc: PersonaError) -> None:
        """An error we raise on purpose: an outage if ServiceUnavailable, else the registry
        answered but something is off; either way the current model stays and we retry."""
        self._record(not isinstance(exc, ServiceUnavailable), str(exc))

    def _record(self, reachable: bool, error: str | None) -> None:
        """Remember the outcome; log only when reachability changes (no log line per poll)."""
        before = self._status.registry_reachable
        self._status = FollowerStatus(reachable, _now(), None if error is None else error[:300])
        if before is not False and not reachable:
            if self._loaded is None:
                log.warning("registry unreachable at start: %s", error)
            else:
                log.warning("registry unreachable, still using %s: %s", self._describe(), error)
        elif before is False and reachable:
            log.info("registry reachable again")

    def _describe(self) -> str:
        loaded = self._loaded
        return "nothing yet" if loaded is None else f"v{loaded.model.version} ({loaded.source})"

    def _fallback(self, reason: str) -> LoadedModel:
        cached = self.cache.load()
        if cached is not None:
            try:
                check_candidate(cached, allow_new_personas=self._allow_new)
            except InvalidModel as exc:
                log.warning("ignoring cached model %s: %s", self.cache.path, exc)
            else:
                return LoadedModel(
                    cached, "cache", _now(), f"on-disk cache {self.cache.path} ({reason})"
                )
        return self._vendor(f"{reason}, no cached model")

    def _vendor(self, reason: str) -> LoadedModel:
        model = CentroidModel.from_catalogue(load_vendor_catalogue())
        return LoadedModel(model, "vendor", _now(), f"vendor centroids ({reason})")
