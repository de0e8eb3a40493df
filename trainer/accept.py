"""A person accepts held candidate personas: name them, refit with them, promote.

A retrain that finds a group matching no persona holds instead of promoting (status
``candidate_persona``): deciding that customers form a new persona is a marketing decision, not a
statistical one. This is the other half of that decision, ``persona train accept COMMAND_ID
--name "…"``: the champion's personas keep their ids and names, each candidate becomes a new
persona (next free id, the given name), the range of the held command is fitted again from the
champion's centroids plus the candidates' (so nobody is renamed), the usual quality gate applies,
and the version is published like any retrain (trainer/publish.py). The new ids are written into
the model's ``approved_new_personas`` metadata: the stream workers, which refuse persona ids they
have never seen (a broken model must not relabel customers), accept exactly these.

An accept that stopped after registering its version (killed, MLflow or PostgreSQL gone) leaves
the command held; accepting it again with the same names finishes that version
(``publish.resume``) instead of registering a second one.
"""

from __future__ import annotations

import getpass
import json
import logging
from uuid import UUID

import numpy as np

from personas.catalogue import load_vendor_catalogue
from personas.champion import APPROVED_KEY, approved_ids
from personas.errors import ConfigError
from personas.model import CentroidModel
from personas.registry import champion_version, load_version
from personas.settings import Settings
from trainer import ledger, publish, register
from trainer.data import features_of, load_range
from trainer.events import Publisher
from trainer.fitting import fit_kmeans
from trainer.identity import match_centroids, match_threshold
from trainer.job import Job, open_job
from trainer.retrain import Outcome, judge_refit
from trainer.settings import TrainerSettings

__all__ = ["accept_candidates"]

log = logging.getLogger(__name__)


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
    with open_job(settings, trainer_settings, publisher=publisher, command_id=command_id) as job:
        return _accept(job, names, accepted_by or _who())


def _who() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in a bare container
        return "unknown"


def _accept(job: Job, names: list[str], accepted_by: str) -> Outcome:
    settings, ts, command_id = job.settings, job.ts, job.command_id
    assert command_id is not None
    held = ledger.command_record(settings, command_id)
    if held is None:
        raise CannotAccept(
            f"no retrain command {command_id} for model {settings.model_name} "
            "(`persona train status` lists them)"
        )
    if held.status != "candidate_persona" or not held.run_id:
        raise CannotAccept(
            f"command {command_id} is '{held.status}', not held for a candidate persona"
        )
    candidates = register.run_document(settings, held.run_id, "candidates.json")["candidates"]
    names = [n.strip() for n in names]
    if len(names) != len(candidates) or not all(names):
        raise CannotAccept(
            f"the held run has {len(candidates)} candidate(s): give one non-empty --name each "
            f"(got {len(names)})"
        )
    current = champion_version(settings)
    interrupted = publish.registered_by(job, "accepted")
    if interrupted is not None:
        return _resume(job, interrupted, names, accepted_by, current)
    tags = register.run_tags(settings, held.run_id)
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
        settings, held.range_start, held.range_end, max_rows=ts.max_train_rows, seed=ts.seed
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

    new_personas = {str(pid): name for pid, name in zip(new_ids, names, strict=True)}
    reason = f"accepted by {accepted_by}: {_described(new_personas)}"
    fitted = publish.Fitted(
        source="accepted",
        personas=CentroidModel(
            centroids=centroids,
            persona_ids=(*champion.persona_ids, *new_ids),
            persona_names=(*champion.persona_names, *names),
            feature_names=champion.feature_names,
        ),
        frame=frame,
        labels=labels,
        run_name=f"accept-{str(command_id)[:8]}",
        params={
            "command_id": str(command_id),
            "range_start": held.range_start.isoformat(),
            "range_end": held.range_end.isoformat(),
            "champion_version": champion.version,
            "k": k,
            "held_run_id": held.run_id,
            "accepted_by": accepted_by,
            "seed": ts.seed,
        },
        metadata={"source": "accepted", APPROVED_KEY: new_ids, "accepted_by": accepted_by},
        metrics=dict(gate.metrics),
        version_tags={APPROVED_KEY: ",".join(map(str, new_ids))},
        documents={
            "new_personas.json": new_personas,
            "candidates.json": {"candidates": candidates},
        },
        lineage=publish.Lineage(
            held.range_start, held.range_end, champion.version, approved_ids(champion)
        ),
    )
    done = publish.publish(job, fitted, reason)
    return Outcome.promoted(job, done, reason, {"new_personas": new_personas})


def _described(new_personas: dict[str, str]) -> str:
    return "new persona(s) " + ", ".join(f"{pid} '{name}'" for pid, name in new_personas.items())


def _resume(
    job: Job,
    interrupted: register.VersionInfo,
    names: list[str],
    accepted_by: str,
    current: int | None,
) -> Outcome:
    """An earlier accept of this command registered ``interrupted`` and stopped before the
    ledger knew. Finish that version — the person's decision, made once — instead of fitting
    and registering a second one; but only with the names it was registered with."""
    assert job.command_id is not None
    version = interrupted.version
    new_ids = [int(i) for i in interrupted.tags.get(APPROVED_KEY, "").split(",") if i]
    registered_names = json.loads(interrupted.tags.get("persona_names", "[]"))[-len(new_ids) :]
    if not new_ids or registered_names != names:
        raise CannotAccept(
            f"version {version} was registered by an interrupted accept of this command with the "
            f"name(s) {registered_names}: accept it again with those names"
        )
    if publish.superseded(interrupted, current):
        raise CannotAccept(
            f"version {version} was registered by an interrupted accept of this command, but the "
            f"champion has since moved from {interrupted.tags.get('parent_version')} to "
            f"{current}: request a new retrain of the range instead"
        )
    new_personas = {str(pid): name for pid, name in zip(new_ids, names, strict=True)}
    reason = (
        f"accepted by {accepted_by}: {_described(new_personas)} (resumed after an interruption: "
        f"version {version} was registered by this command)"
    )
    done = publish.resume(job, interrupted, reason)
    return Outcome.promoted(job, done, reason, {"new_personas": new_personas})


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
