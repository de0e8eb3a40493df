"""A person accepts held candidate personas: name them, refit with them, promote.

A retrain that finds a group matching no persona holds instead of promoting (status
``candidate_persona``): deciding that customers form a new persona is a marketing decision, not a
statistical one. This is the other half of that decision, ``persona train accept COMMAND_ID
--name "…"``: the champion's personas keep their ids and names, each candidate becomes a new
persona (next free id, the given name), the range of the held command is fitted again from the
champion's centroids plus the candidates' (so nobody is renamed), the usual quality gate applies,
and the version is registered and promoted like any retrain. The new ids are written into the
model's ``approved_new_personas`` metadata: the stream workers, which refuse persona ids they have
never seen (a broken model must not relabel customers), accept exactly these.
"""

from __future__ import annotations

import getpass
import logging
from typing import Any
from uuid import UUID

import numpy as np

from personas.catalogue import load_vendor_catalogue
from personas.errors import ConfigError
from personas.model import CentroidModel
from personas.registry import champion_version, load_version
from personas.settings import Settings
from trainer import ledger, register
from trainer.data import features_of, load_range, reference_frame
from trainer.events import Publisher
from trainer.fitting import empirical_quantile_distance, fit_kmeans, outlier_distance
from trainer.identity import match_centroids, match_threshold
from trainer.retrain import Outcome, judge_refit
from trainer.settings import TrainerSettings

__all__ = ["APPROVED_KEY", "accept_candidates"]

log = logging.getLogger(__name__)

#: Model metadata key listing the persona ids a person approved (stream_app.swap trusts these).
APPROVED_KEY = "approved_new_personas"


class CannotAccept(ConfigError):
    """The command cannot be accepted as it stands (wrong status, names, champion moved…)."""


def accept_candidates(
    settings: Settings,
    command_id: UUID,
    names: list[str],
    *,
    trainer_settings: TrainerSettings | None = None,
    publisher: Publisher | None = None,
    accepted_by: str | None = None,
) -> Outcome:
    """Promote the held command's range refitted with its candidates as new, named personas."""
    ts = trainer_settings or TrainerSettings()
    own_publisher = publisher is None
    pub = publisher or Publisher(settings)
    try:
        with ledger.training_lock(settings):
            return _accept(settings, ts, command_id, names, pub, accepted_by or _who())
    finally:
        if own_publisher:
            pub.close()


def _who() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in a bare container
        return "unknown"


def _accept(
    settings: Settings,
    ts: TrainerSettings,
    command_id: UUID,
    names: list[str],
    pub: Publisher,
    accepted_by: str,
) -> Outcome:
    held = ledger.command_record(settings, command_id)
    if held is None:
        raise CannotAccept(
            f"no retrain command {command_id} for model {settings.model_name} "
            "(`persona train status` lists them)"
        )
    if held["status"] != "candidate_persona" or not held["run_id"]:
        raise CannotAccept(
            f"command {command_id} is '{held['status']}', not held for a candidate persona"
        )
    candidates = register.run_document(settings, held["run_id"], "candidates.json")["candidates"]
    names = [n.strip() for n in names]
    if len(names) != len(candidates) or not all(names):
        raise CannotAccept(
            f"the held run has {len(candidates)} candidate(s): give one non-empty --name each "
            f"(got {len(names)})"
        )
    current = champion_version(settings)
    tags = register.run_tags(settings, held["run_id"])
    if current is None or str(current) != tags.get("champion_version"):
        raise CannotAccept(
            f"the champion is version {current} now, the candidates were found against version "
            f"{tags.get('champion_version')}: request a new retrain of the range instead"
        )
    champion = load_version(settings, current)
    taken = set(champion.persona_ids) | set(load_vendor_catalogue().ids)
    clash = set(names) & set(champion.persona_names)
    if clash:
        raise CannotAccept(f"persona name(s) already in use: {sorted(clash)}")
    first_id = max(taken) + 1
    new_ids = list(range(first_id, first_id + len(candidates)))

    frame = load_range(
        settings, held["range_start"], held["range_end"], max_rows=ts.max_train_rows, seed=ts.seed
    )
    x = features_of(frame)
    # Start from the champion's centroids plus the candidates'. A candidate of the k-fit is the
    # persona cluster that swallowed the new group, so it starts between the two and Lloyd's
    # iterations pull it onto the new group while the persona's own centroid keeps its rows.
    wanted = np.asarray([c["centroid"] for c in candidates], dtype=np.float64)
    start = np.vstack([champion.centroids, wanted])
    k = start.shape[0]
    fit = fit_kmeans(x, start, seed=ts.seed)
    order = _persona_order(champion.centroids, wanted, fit.centroids, ts.match_fraction)
    centroids = fit.centroids[order]
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(k)
    labels = rank[fit.labels]  # cluster j -> row of j in the new model
    gate = judge_refit(x, labels, centroids, champion, ts)
    if not gate.passed:
        raise CannotAccept(f"the model with the new persona(s) fails the gate: {gate.reason}")

    persona_ids = (*champion.persona_ids, *new_ids)
    persona_names = (*champion.persona_names, *names)
    range_start, range_end = held["range_start"], held["range_end"]
    model = CentroidModel(
        centroids=centroids,
        persona_ids=persona_ids,
        persona_names=persona_names,
        outlier_distance=outlier_distance(x, centroids, labels, ts.outlier_quantile),
        feature_names=champion.feature_names,
        metadata={
            "source": "accepted",
            "command_id": str(command_id),
            "range_start": range_start.isoformat(),
            "range_end": range_end.isoformat(),
            "parent_version": champion.version,
            APPROVED_KEY: new_ids,
            "accepted_by": accepted_by,
            "outlier_rule": f"robust chi-square, q={ts.outlier_quantile}",
        },
    )
    metrics: dict[str, float] = {**gate.metrics, "outlier_distance": model.outlier_distance}
    metrics["outlier_distance_empirical"] = empirical_quantile_distance(
        x, centroids, labels, ts.outlier_quantile
    )
    for i, pid in enumerate(persona_ids):
        metrics[f"cluster_size_{pid}"] = float(np.sum(labels == i))
    new_personas = {str(pid): name for pid, name in zip(new_ids, names, strict=True)}
    params: dict[str, Any] = {
        "command_id": str(command_id),
        "range_start": range_start.isoformat(),
        "range_end": range_end.isoformat(),
        "champion_version": champion.version,
        "k": k,
        "held_run_id": held["run_id"],
        "accepted_by": accepted_by,
        "seed": ts.seed,
    }
    logged = register.log_run(
        settings,
        experiment=ts.experiment,
        run_name=f"accept-{str(command_id)[:8]}",
        params=params,
        metrics=metrics,
        tags={
            "command_id": str(command_id),
            "champion_version": str(champion.version),
            "decision": "promoted",
            register.SOURCE_TAG: "accepted",
        },
        documents={
            "new_personas.json": new_personas,
            "candidates.json": {"candidates": candidates},
        },
        reference=reference_frame(frame, model, max_rows=ts.reference_rows, seed=ts.seed),
        centroids=model.centroids,
    )
    registered = register.register_run(
        settings,
        logged,
        model,
        {
            register.SOURCE_TAG: "accepted",
            "command_id": str(command_id),
            "range_start": range_start.isoformat(),
            "range_end": range_end.isoformat(),
            "parent_version": str(champion.version),
            APPROVED_KEY: ",".join(map(str, new_ids)),
        },
    )
    register.promote(settings, registered, pub)
    described = ", ".join(f"{pid} '{name}'" for pid, name in new_personas.items())
    reason = f"accepted by {accepted_by}: new persona(s) {described}"
    ledger.finish(
        settings,
        command_id,
        "promoted",
        reason,
        version=registered.version,
        run_id=logged.run_id,
    )
    log.info("command %s: promoted version %d (%s)", command_id, registered.version, reason)
    return Outcome(
        status="promoted",
        command_id=command_id,
        reason=reason,
        champion_version=registered.version,
        version=registered.version,
        run_id=logged.run_id,
        details={"new_personas": new_personas},
    )


def _persona_order(
    personas: np.ndarray, wanted: np.ndarray, fitted: np.ndarray, match_fraction: float
) -> np.ndarray:
    """Fitted cluster index for each row of the new model: the personas first (each within the
    match threshold of its old centroid, as a retrain requires), then the new groups in the
    order of the candidates (each beyond the threshold from every persona, or it is not new)."""
    threshold = match_threshold(personas, match_fraction)
    matching = match_centroids(personas, fitted, threshold)  # rectangular: extras stay unmatched
    moved = [j for j in matching.candidates if matching.old_index[j] >= 0]
    if moved:
        raise CannotAccept(
            "refitted with the candidates, a persona's centroid moved beyond the match threshold "
            f"({threshold:.3f}); request a new retrain of the range"
        )
    matched = np.flatnonzero(matching.old_index >= 0)
    persona_clusters = np.empty(personas.shape[0], dtype=np.int64)
    persona_clusters[matching.old_index[matched]] = matched  # row i = cluster matched to persona i
    extra = np.flatnonzero(matching.old_index < 0)
    pairing = match_centroids(wanted, fitted[extra], np.inf)
    new_clusters = np.empty(len(wanted), dtype=np.int64)
    new_clusters[pairing.old_index] = extra
    gaps = np.sqrt(((fitted[new_clusters][:, None, :] - personas[None]) ** 2).sum(-1)).min(axis=1)
    if (gaps <= threshold).any():
        raise CannotAccept(
            "refitted with the candidates, a new group lies within the match threshold of an "
            "existing persona: it is that persona, not a new one"
        )
    return np.concatenate([persona_clusters, new_clusters])
