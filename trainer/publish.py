"""The one path from a fitted model to the champion, for bootstrap, retrain and accept alike.

``publish(job, fitted, reason)``:

1. **model** — the outlier distance by the robust chi-square rule (trainer/fitting.py) from the
   rows the model was fitted on, the metadata (the job's own, the command's lineage with the
   parent's approvals carried forward, the rule);
2. **run** — one MLflow run: params, metrics (the job's plus the outlier and cluster-size
   metrics every version has), documents, ``reference.parquet`` and the sklearn model;
3. **version** — ``persona_model.json`` with version null, the registered version (tags: source,
   persona ids and names, outlier distance, lineage), then the document with its number
   (trainer/register.py says why in this order);
4. **go live** — the champion alias moves and ModelUpdated goes out (``go_live``);
5. **ledger** — the command, if the job has one, is recorded ``promoted`` with the version.

A job that stopped after step 3 (killed, a link cut) left a version tagged with its source and
command id. ``registered_by`` finds it and ``resume`` finishes it — the document is read back
(a version without it is never promoted: InvalidModel), given its number, and steps 4–5 run —
instead of fitting again and registering a second version of the same decision. Whether a
version may be resumed at all (the ledger still undecided, the champion not moved on:
``superseded``) is the caller's call, because each job decides it differently.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from personas.champion import APPROVED_KEY
from personas.model import CentroidModel
from personas.registry import champion_version, load_version
from personas.schemas import ModelUpdated
from trainer import ledger, register
from trainer.data import features_of, reference_frame
from trainer.fitting import empirical_quantile_distance, outlier_distance

if TYPE_CHECKING:
    import pandas as pd

    from trainer.job import Job

__all__ = [
    "Fitted",
    "Lineage",
    "Published",
    "VersionSource",
    "go_live",
    "publish",
    "registered_by",
    "resume",
    "superseded",
]

log = logging.getLogger(__name__)

#: Where a version comes from (version and run tag ``persona_source``).
VersionSource = Literal["bootstrap", "retrain", "accepted"]


@dataclass(frozen=True)
class Lineage:
    """What a refit descends from: the command's event-time range and the champion it refits.

    ``parent_approved`` is the parent's ``approved_ids``: a version carries every approval of
    its lineage forward, because followers judge a version by itself (personas/champion/
    acceptance.py) — a retrain of an accepted model must not lose the person's approval.
    """

    range_start: datetime
    range_end: datetime
    parent_version: int
    parent_approved: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Fitted:
    """A model fitted on rows, and what only its job knows about it.

    ``personas`` holds the centroids in persona order with their ids, names and feature names;
    its outlier distance and metadata are replaced by ``publish``. ``labels[i]`` is the row of
    ``personas.centroids`` that row ``i`` of ``frame`` belongs to.
    """

    source: VersionSource
    personas: CentroidModel
    frame: pd.DataFrame
    labels: np.ndarray
    run_name: str
    params: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    run_tags: dict[str, str] = field(default_factory=dict)
    version_tags: dict[str, str] = field(default_factory=dict)
    documents: dict[str, Any] = field(default_factory=dict)
    lineage: Lineage | None = None


@dataclass(frozen=True)
class Published:
    version: int
    run_id: str
    update: ModelUpdated | None  # set when the alias moved (or was announced again)
    model: CentroidModel | None = None  # the published model (fresh path only)
    metrics: dict[str, float] = field(default_factory=dict)  # what the run logged (fresh path)


def finished_model(job: Job, fitted: Fitted) -> tuple[CentroidModel, dict[str, float]]:
    """Step 1: the model as it will be registered, and the metrics every version logs."""
    x = features_of(fitted.frame)
    centroids, labels, q = fitted.personas.centroids, fitted.labels, job.ts.outlier_quantile
    threshold = outlier_distance(x, centroids, labels, q)
    metadata = dict(fitted.metadata)
    if fitted.lineage is not None:
        metadata.update(
            {
                "command_id": str(job.command_id),
                "range_start": fitted.lineage.range_start.isoformat(),
                "range_end": fitted.lineage.range_end.isoformat(),
                "parent_version": fitted.lineage.parent_version,
            }
        )
        approved = fitted.lineage.parent_approved | set(metadata.get(APPROVED_KEY, []))
        if approved:
            metadata[APPROVED_KEY] = sorted(approved)
    metadata["outlier_rule"] = f"robust chi-square, q={q}"
    model = replace(fitted.personas, outlier_distance=threshold, metadata=metadata)
    distance = np.sqrt(((x - centroids[labels]) ** 2).sum(axis=1))
    metrics = dict(fitted.metrics)
    metrics["outlier_distance"] = threshold
    metrics["outlier_distance_empirical"] = empirical_quantile_distance(x, centroids, labels, q)
    metrics["outlier_share"] = float((distance > threshold).mean()) if len(x) else 0.0
    sizes = np.bincount(labels, minlength=model.n_personas)
    for pid, size in zip(model.persona_ids, sizes, strict=True):
        metrics[f"cluster_size_{pid}"] = float(size)
    return model, metrics


def _tags(job: Job, fitted: Fitted) -> tuple[dict[str, str], dict[str, str]]:
    """(run tags, version tags): the source on both, a command's lineage on both."""
    run_tags: dict[str, str] = {register.SOURCE_TAG: fitted.source}
    version_tags: dict[str, str] = {register.SOURCE_TAG: fitted.source}
    if fitted.lineage is not None:
        parent = str(fitted.lineage.parent_version)
        run_tags.update(
            {"command_id": str(job.command_id), "champion_version": parent, "decision": "promoted"}
        )
        version_tags.update(
            {
                "command_id": str(job.command_id),
                "range_start": fitted.lineage.range_start.isoformat(),
                "range_end": fitted.lineage.range_end.isoformat(),
                "parent_version": parent,
            }
        )
    return {**run_tags, **fitted.run_tags}, {**version_tags, **fitted.version_tags}


def publish(
    job: Job, fitted: Fitted, reason: str, *, only_if_no_champion: bool = False
) -> Published:
    """Steps 1–5 for a freshly fitted model. ``only_if_no_champion`` (bootstrap): register, but
    leave an existing champion where it is (a retrained one is never moved back)."""
    model, metrics = finished_model(job, fitted)
    run_tags, version_tags = _tags(job, fitted)
    logged = register.log_run(
        job.settings,
        experiment=job.ts.experiment,
        run_name=fitted.run_name,
        params=fitted.params,
        metrics=metrics,
        tags=run_tags,
        documents=fitted.documents,
        reference=reference_frame(
            fitted.frame, model, max_rows=job.ts.reference_rows, seed=job.ts.seed
        ),
        centroids=model.centroids,
    )
    registered = register.register_run(job.settings, logged, model, version_tags)
    update = None
    if not only_if_no_champion or champion_version(job.settings) is None:
        parent = None if fitted.lineage is None else fitted.lineage.parent_version
        update = go_live(job, registered, parent, reason)
    return Published(registered.version, registered.run_id, update, model, metrics)


def go_live(
    job: Job, registered: register.Registered, parent: int | None, reason: str
) -> ModelUpdated | None:
    """Steps 4–5: move the alias to ``registered`` and announce it; if the alias is there already
    (a resumed job cannot know whether ModelUpdated went out) announce it again — consumers
    compare versions. Then the ledger decides the command, if there is one."""
    if champion_version(job.settings) == registered.version:
        update: ModelUpdated | None = register.announce(
            job.settings, registered, parent, job.publisher, job.clock()
        )
    else:
        update = register.promote(job.settings, registered, job.publisher, job.clock())
    if job.command_id is not None:
        ledger.finish(
            job.settings,
            job.command_id,
            "promoted",
            reason,
            version=registered.version,
            run_id=registered.run_id,
        )
        log.info("command %s: promoted version %d (%s)", job.command_id, registered.version, reason)
    return update


def registered_by(job: Job, source: VersionSource) -> register.VersionInfo | None:
    """The latest version this job registered before (its source and, for a command, its command
    id), None if it never got that far."""
    tags: dict[str, str] = {register.SOURCE_TAG: source}
    if job.command_id is not None:
        tags["command_id"] = str(job.command_id)
    found = register.versions_with_tags(job.settings, tags)
    return register.version_info(job.settings, found[-1]) if found else None


def superseded(info: register.VersionInfo, current: int | None) -> bool:
    """The champion has moved on since ``info`` was registered: it is neither that version nor
    the one it was fitted against, so promoting it now would replace a newer decision."""
    parent = info.tags.get("parent_version")
    return current != info.version and parent is not None and str(current) != parent


def resume(job: Job, info: register.VersionInfo, reason: str) -> Published:
    """Finish a version an interrupted attempt of this job registered: read its document back
    (InvalidModel if it has none — such a version cannot serve and is never promoted), give it
    its version number, then go live and record the command."""
    registered = info.registered
    model = load_version(job.settings, info.version)
    register.write_model_document(job.settings, registered, model)
    parent = info.tags.get("parent_version")
    update = go_live(job, registered, int(parent) if parent else None, reason)
    return Published(registered.version, registered.run_id, update, model)
