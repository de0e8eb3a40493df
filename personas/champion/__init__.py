"""Following the registry's champion: the one component the stream worker and the REST service
use to pick, validate, cache and hot-swap the model they label with (see ``follower``)."""

from personas.champion.acceptance import APPROVED_KEY, approved_ids, check_candidate
from personas.champion.cache import ModelCache
from personas.champion.follower import (
    ChampionFollower,
    FollowerStatus,
    LoadedModel,
    ModelOrigin,
    OnRefuse,
    OnSwap,
    Registry,
)
from personas.champion.updates import UpdateListener, is_update_for
from personas.champion.watcher import ChampionWatcher

__all__ = [
    "APPROVED_KEY",
    "ChampionFollower",
    "ChampionWatcher",
    "FollowerStatus",
    "LoadedModel",
    "ModelCache",
    "ModelOrigin",
    "OnRefuse",
    "OnSwap",
    "Registry",
    "UpdateListener",
    "approved_ids",
    "check_candidate",
    "is_update_for",
]
