"""The stream worker's champion follower: ``personas.champion.ChampionFollower`` (the component
the REST service uses too — one acceptance rule, one update rule) with the stream's settings and
its Prometheus metrics.

The worker labels each batch with ``follower.current`` read once, so no batch mixes versions; the
follower's watcher (``follower.watcher``: registry poll every ``registry_poll_seconds`` plus a
model-updates listener outside the labellers' consumer group, so every worker sees every update)
is started by ``run_worker`` and gates readiness through ``watcher.assigned``.
"""

from __future__ import annotations

from personas.champion import ChampionFollower, LoadedModel, Registry
from personas.settings import Settings
from stream_app.metrics import StreamMetrics
from stream_app.settings import StreamSettings

__all__ = ["UPDATES_GROUP_PREFIX", "follow_champion"]

#: Group ids of the workers' model-updates listeners (under the stream's ACL prefix).
UPDATES_GROUP_PREFIX = "persona-stream-swap"


def follow_champion(
    settings: Settings,
    stream: StreamSettings,
    metrics: StreamMetrics,
    *,
    registry: Registry | None = None,
) -> ChampionFollower:
    """A follower caching in ``<state_dir>/models``; nothing is loaded or started yet.
    ``registry`` is MLflow (``personas.registry``) unless a test gives a fake."""

    def swapped(current: LoadedModel, previous: LoadedModel | None) -> None:
        metrics.model_version.set(current.model.version)
        if previous is not None:
            metrics.model_swaps.labels(result="applied").inc()

    def refused(version: int, reason: str) -> None:
        metrics.model_swaps.labels(result="refused").inc()

    return ChampionFollower(
        settings,
        registry=registry,
        cache_dir=stream.resolved_state_dir(settings) / "models",
        poll_interval_s=stream.registry_poll_seconds,
        allow_new_personas=settings.allow_new_personas,
        updates_group_prefix=UPDATES_GROUP_PREFIX,
        on_swap=swapped,
        on_refuse=refused,
    )
