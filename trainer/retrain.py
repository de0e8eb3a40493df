"""Retrain on command: refit, keep persona identity, gate, register, promote.

One command, one decision, one MLflow run (except duplicates and stale commands, which are only
written to the ledger):

1. dedup — the ledger says whether this range was trained already;
2. stale — a command whose range ends no later than the champion's own training range (event
   time), or that was requested before a retrained champion was registered (its evidence was
   measured against an older model), is older than the champion;
3. fit — KMeans on the labelled rows of [range_start, range_end), started from the champion's
   centroids (or k-means++ if configured);
4. identity — optimal assignment of new to old centroids (trainer/identity.py); a cluster beyond
   the threshold, or a k+1 fit's extra cluster far from every persona, is a *candidate persona*:
   the champion stays and a person decides (TrainerAlert candidate_persona);
5. gate — trainer/gate.py; failure keeps the champion (TrainerAlert gate_failed);
6. promote — trainer/publish.py, the path every published model takes (new outlier distance,
   run, version with the persona ids and names carried over, alias, ModelUpdated, ledger).

A command that registered its version and then stopped is finished by ``publish.resume`` instead
of being trained again. What is the retrain's own is the dedup and staleness rules, the fit, the
identity matching and the gate; publishing is shared with bootstrap and accept.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import numpy as np

from personas.champion import approved_ids
from personas.errors import InvalidModel
from personas.model import CentroidModel
from personas.registry import champion_version, load_version
from personas.schemas import RetrainCommand
from personas.settings import Settings
from trainer import ledger, publish, register
from trainer.data import features_of, load_range
from trainer.events import Publisher
from trainer.fitting import Fit, fit_kmeans
from trainer.gate import GateResult, evaluate_gate, silhouette
from trainer.identity import Matching, match_centroids, match_threshold
from trainer.job import Job, open_job
from trainer.settings import TrainerSettings

__all__ = [
    "Outcome",
    "Status",
    "find_candidates",
    "handle_command",
    "judge_refit",
    "record_failure",
]

log = logging.getLogger(__name__)

Status = Literal["promoted", "gate_failed", "candidate_persona", "duplicate", "stale", "failed"]


@dataclass(frozen=True)
class Outcome:
    """What the trainer decided for one command."""

    status: Status
    command_id: UUID
    reason: str
    champion_version: int | None  # the champion after handling
    version: int | None = None  # the version registered by this command (promoted only)
    run_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def promoted(
        cls,
        job: Job,
        done: publish.Published,
        reason: str,
        details: dict[str, Any] | None = None,
    ) -> Outcome:
        """The job's command went live: the version it registered (fresh or resumed) is the
        champion now — one constructor for retrain and accept, fresh and resumed."""
        assert job.command_id is not None
        return cls(
            "promoted", job.command_id, reason, done.version, done.version, done.run_id,
            details or {},
        )  # fmt: skip


def handle_command(
    settings: Settings,
    cmd: RetrainCommand,
    *,
    trainer_settings: TrainerSettings | None = None,
    publisher: Publisher | None = None,
) -> Outcome:
    """Handle one retrain command end to end (the consumer loop calls this for every message).

    Raises ServiceUnavailable when PostgreSQL, MLflow or Kafka do not answer: the caller should
    retry the same command later (it is not recorded as trained).
    """
    with open_job(
        settings, trainer_settings, publisher=publisher, command_id=cmd.command_id
    ) as job:
        return _handle(job, cmd)


def _handle(job: Job, cmd: RetrainCommand) -> Outcome:
    settings = job.settings
    ledger.record_received(settings, cmd)
    current = champion_version(settings)
    seen = ledger.command_record(settings, cmd.command_id, any_model=True)
    if seen is not None and seen.status not in ("received", "failed"):
        # Redelivered (e.g. the offset commit was lost): keep its own record untouched.
        reason = f"command already handled ({seen.status})"
        log.info("command %s: duplicate — %s", cmd.command_id, reason)
        return Outcome("duplicate", cmd.command_id, reason, current, version=seen.version)
    earlier = ledger.previous_training(settings, cmd)
    if earlier is not None:
        reason = f"range already trained by command {earlier['command_id']} ({earlier['status']})"
        return _skip(job, "duplicate", reason, current)
    if current is None:
        return record_failure(job, "no champion yet: run `persona train bootstrap` first", None)
    interrupted = publish.registered_by(job, "retrain")
    if interrupted is not None:
        return _resume(job, interrupted, current)
    try:
        champion = load_version(settings, current)
    except InvalidModel as exc:
        return record_failure(job, f"champion version {current} is unusable: {exc}", current)
    info = register.version_info(settings, current)
    champion_end = info.tags.get("range_end")
    if champion_end is not None and cmd.range_end <= datetime.fromisoformat(champion_end):
        reason = (
            f"range ends {cmd.range_end.isoformat()}, not after the champion's training range "
            f"(version {current}, ends {champion_end})"
        )
        return _skip(job, "stale", reason, current)
    if info.tags.get(register.SOURCE_TAG) == "retrain" and cmd.requested_at < info.created:
        # The drift it reports was measured against an older champion's reference; the monitor
        # judges the new champion afresh and asks again if the data still do not fit.
        reason = (
            f"requested {cmd.requested_at.isoformat()}, before the current champion "
            f"(version {current}, registered {info.created.isoformat()})"
        )
        return _skip(job, "stale", reason, current)
    return _train(job, cmd, champion)


def _resume(job: Job, interrupted: register.VersionInfo, current: int) -> Outcome:
    """This command registered a version, then the trainer stopped before recording the outcome
    (crash, kill, lost connection). Finish that job instead of training the range again, which
    would register a second version of the same data."""
    version = interrupted.version
    if publish.superseded(interrupted, current):
        reason = (
            f"version {version} was registered by this command before an interruption, but the "
            f"champion has since moved from {interrupted.tags.get('parent_version')} to "
            f"{current}; leaving it"
        )
        return _skip(job, "stale", reason, current)
    reason = (
        f"resumed after an interruption: version {version} was registered by this command; "
        "promoted without training again"
    )
    try:
        done = publish.resume(job, interrupted, reason)
    except InvalidModel as exc:
        # A version registered without its persona_model.json cannot serve, and training again
        # would register a second version: a person must look.
        return record_failure(job, f"version {version}, registered by this command: {exc}", current)
    return Outcome.promoted(job, done, reason)


def _skip(job: Job, status: Status, reason: str, current: int | None) -> Outcome:
    assert job.command_id is not None
    log.info("command %s: %s — %s", job.command_id, status, reason)
    ledger.finish(job.settings, job.command_id, status, reason)
    return Outcome(
        status=status, command_id=job.command_id, reason=reason, champion_version=current
    )


def record_failure(
    job: Job, reason: str, current: int | None, *, message: str | None = None
) -> Outcome:
    """The command cannot be trained (no usable champion, bad data, an unexpected error): record
    it ``failed`` and say so on drift-alerts, so a poison command never blocks the queue. An
    outage is never recorded here (it is retried). ``message`` is the alert's text (default
    ``reason``); ``current`` the champion the caller saw (None if unknown)."""
    assert job.command_id is not None
    log.error("command %s failed: %s", job.command_id, reason)
    ledger.finish(job.settings, job.command_id, "failed", reason)
    job.alert("retrain_failed", message or reason)
    return Outcome(
        status="failed", command_id=job.command_id, reason=reason, champion_version=current
    )


def find_candidates(
    x: np.ndarray,
    champion: CentroidModel,
    fit: Fit,
    matching: Matching,
    ts: TrainerSettings,
) -> list[dict[str, Any]]:
    """Clusters that are not an existing persona, with what a person needs to judge them.

    From the k-fit: a cluster matched beyond the threshold. From a k+1 fit (started at the
    champion's centroids plus the row farthest from them): its extra cluster, when it holds at least
    ``min_candidate_share`` of the rows and lies beyond the threshold from *every* persona — a new
    group that the k-fit would otherwise absorb into the nearest persona.
    """
    found: list[dict[str, Any]] = []
    for j in matching.candidates:
        i = int(matching.old_index[j])
        found.append(
            {
                "source": f"k={champion.n_personas} fit",
                "centroid": [round(float(v), 4) for v in fit.centroids[j]],
                "size": int(fit.sizes[j]),
                "nearest_persona_id": champion.persona_ids[i] if i >= 0 else None,
                "distance": float(matching.distance[j]),
                "threshold": matching.threshold,
            }
        )
    if found or not ts.check_extra_cluster or len(x) <= champion.n_personas + 1:
        return found
    far = champion.label(x).distance
    start = np.vstack([champion.centroids, x[int(np.argmax(far))]])
    extra = fit_kmeans(x, start, seed=ts.seed)
    dist = np.sqrt(((extra.centroids[:, None, :] - champion.centroids[None]) ** 2).sum(-1))
    for j in range(extra.centroids.shape[0]):
        share = float(extra.sizes[j]) / len(x)
        nearest = int(np.argmin(dist[j]))
        if dist[j, nearest] > matching.threshold and share >= ts.min_candidate_share:
            found.append(
                {
                    "source": f"k={champion.n_personas + 1} fit",
                    "centroid": [round(float(v), 4) for v in extra.centroids[j]],
                    "size": int(extra.sizes[j]),
                    "share": round(share, 4),
                    "nearest_persona_id": champion.persona_ids[nearest],
                    "distance": float(dist[j, nearest]),
                    "threshold": matching.threshold,
                }
            )
    return found


def _train(job: Job, cmd: RetrainCommand, champion: CentroidModel) -> Outcome:
    ts = job.ts
    frame = load_range(
        job.settings, cmd.range_start, cmd.range_end, max_rows=ts.max_train_rows, seed=ts.seed
    )
    x = features_of(frame)
    k = champion.n_personas
    params: dict[str, Any] = {
        "command_id": str(cmd.command_id),
        "range_start": cmd.range_start.isoformat(),
        "range_end": cmd.range_end.isoformat(),
        "reason": cmd.reason,
        "requested_by": cmd.requested_by,
        "champion_version": champion.version,
        "k": k,
        "init": ts.init,
        "seed": ts.seed,
        "min_samples": ts.min_samples,
        "min_cluster_size": ts.min_cluster_size,
        "silhouette_margin": ts.silhouette_margin,
        "match_fraction": ts.match_fraction,
        "outlier_quantile": ts.outlier_quantile,
    }
    run_tags = {"command_id": str(cmd.command_id), "champion_version": str(champion.version)}
    if len(x) < max(ts.min_samples, k + 1):
        # Too few rows to fit at all: the first gate check fails, the others cannot be evaluated.
        failure = f"only {len(x)} rows in the range, the gate needs {max(ts.min_samples, k + 1)}"
        gate = GateResult(False, (failure,), {"gate_n_samples": float(len(x))})
        return _reject(job, cmd, champion, gate, params, run_tags, {})

    fit = fit_kmeans(x, champion.centroids if ts.init == "champion" else k, seed=ts.seed)
    threshold = match_threshold(champion.centroids, ts.match_fraction)
    matching = match_centroids(champion.centroids, fit.centroids, threshold)
    # New centroids in the champion's persona order: row i = the cluster matched to persona i.
    order = np.empty(k, dtype=np.int64)
    order[matching.old_index] = np.arange(k)
    centroids = fit.centroids[order]
    labels = matching.old_index[fit.labels]  # cluster j -> persona row old_index[j]
    gate = judge_refit(x, labels, centroids, champion, ts)
    shifts = np.sqrt(((centroids - champion.centroids) ** 2).sum(axis=1))
    shift_doc = {
        str(pid): {
            "name": champion.persona_names[i],
            "shift": float(shifts[i]),
            "old": champion.centroids[i].tolist(),
            "new": centroids[i].tolist(),
            "size": int(np.sum(labels == i)),
        }
        for i, pid in enumerate(champion.persona_ids)
    }
    metrics = dict(gate.metrics)
    metrics.update(_cluster_metrics(x, labels, fit))
    metrics["match_threshold"] = threshold
    metrics["fit_seconds"] = fit.seconds
    for i, pid in enumerate(champion.persona_ids):
        metrics[f"centroid_shift_{pid}"] = float(shifts[i])
        metrics[f"cluster_size_{pid}"] = float(np.sum(labels == i))
    if not gate.passed:
        return _reject(job, cmd, champion, gate, params, run_tags, metrics)
    candidates = find_candidates(x, champion, fit, matching, ts)
    if candidates:
        return _hold(job, cmd, champion, candidates, params, run_tags, metrics)

    reason = "gate passed; " + ", ".join(
        f"{champion.persona_names[i]} moved {shifts[i]:.3f}" for i in range(k)
    )
    fitted = publish.Fitted(
        source="retrain",
        personas=CentroidModel(
            centroids=centroids,
            persona_ids=champion.persona_ids,
            persona_names=champion.persona_names,
            feature_names=champion.feature_names,
        ),
        frame=frame,
        labels=labels,
        run_name=f"retrain-{cmd.range_start:%Y%m%dT%H%M}-{cmd.range_end:%Y%m%dT%H%M}",
        params=params,
        metadata={"source": "retrain"},
        metrics=metrics,
        documents={"centroid_shift.json": shift_doc, "gate.json": _gate_doc(gate)},
        lineage=publish.Lineage(
            cmd.range_start, cmd.range_end, champion.version, approved_ids(champion)
        ),
    )
    done = publish.publish(job, fitted, reason)
    shifts = {pid: d["shift"] for pid, d in shift_doc.items()}
    return Outcome.promoted(job, done, reason, {"centroid_shift": shifts, **done.metrics})


def judge_refit(
    x: np.ndarray,
    labels: np.ndarray,
    centroids: np.ndarray,
    champion: CentroidModel,
    ts: TrainerSettings,
) -> GateResult:
    """The quality gate of a refit (rows ``x`` labelled ``labels`` = rows of ``centroids``),
    silhouettes compared with the champion's labelling of the same seeded sample."""
    sample = np.random.default_rng(ts.seed).permutation(len(x))[: ts.silhouette_rows]
    return evaluate_gate(
        n_samples=len(x),
        cluster_sizes=np.bincount(labels, minlength=len(centroids)),
        centroids=centroids,
        silhouette_new=silhouette(x, labels, sample),
        silhouette_champion=silhouette(x, champion.label(x).index, sample),
        min_samples=ts.min_samples,
        min_cluster_size=ts.min_cluster_size,
        silhouette_margin=ts.silhouette_margin,
    )


def _cluster_metrics(x: np.ndarray, labels: np.ndarray, fit: Fit) -> dict[str, float]:
    from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score

    metrics = {"n_samples": float(len(x)), "inertia": fit.inertia, "n_iter": float(fit.n_iter)}
    if len(np.unique(labels)) >= 2:
        metrics["calinski_harabasz"] = float(calinski_harabasz_score(x, labels))
        metrics["davies_bouldin"] = float(davies_bouldin_score(x, labels))
    return metrics


def _gate_doc(gate: GateResult) -> dict[str, Any]:
    return {"passed": gate.passed, "failures": list(gate.failures), "metrics": gate.metrics}


def _reject(
    job: Job,
    cmd: RetrainCommand,
    champion: CentroidModel,
    gate: GateResult,
    params: dict[str, Any],
    run_tags: dict[str, str],
    metrics: dict[str, float],
) -> Outcome:
    logged = register.log_run(
        job.settings,
        experiment=job.ts.experiment,
        run_name=f"retrain-rejected-{str(cmd.command_id)[:8]}",
        params=params,
        metrics={**gate.metrics, **metrics},
        tags={**run_tags, "decision": "gate_failed", "gate_reason": gate.reason[:5000]},
        documents={"gate.json": _gate_doc(gate)},
    )
    message = f"retrain on {cmd.range_start:%Y-%m-%d %H:%M}..{cmd.range_end:%Y-%m-%d %H:%M} "
    message += f"failed the quality gate, champion v{champion.version} stays: {gate.reason}"
    job.alert(
        "gate_failed",
        message,
        {"failures": list(gate.failures), "run_id": logged.run_id, "metrics": gate.metrics},
    )
    ledger.finish(job.settings, cmd.command_id, "gate_failed", gate.reason, run_id=logged.run_id)
    log.warning("command %s: %s", cmd.command_id, message)
    return Outcome(
        status="gate_failed",
        command_id=cmd.command_id,
        reason=gate.reason,
        champion_version=champion.version,
        run_id=logged.run_id,
        details={"failures": list(gate.failures), **metrics},
    )


def _hold(
    job: Job,
    cmd: RetrainCommand,
    champion: CentroidModel,
    candidates: list[dict[str, Any]],
    params: dict[str, Any],
    run_tags: dict[str, str],
    metrics: dict[str, float],
) -> Outcome:
    reason = (
        f"{len(candidates)} cluster(s) match no existing persona within "
        f"{candidates[0]['threshold']:.3f}; a person must decide (champion v{champion.version} stays)"
    )
    logged = register.log_run(
        job.settings,
        experiment=job.ts.experiment,
        run_name=f"retrain-candidate-{str(cmd.command_id)[:8]}",
        params=params,
        metrics={**metrics, "n_candidates": float(len(candidates))},
        tags={**run_tags, "decision": "candidate_persona", "gate_reason": reason},
        documents={"candidates.json": {"candidates": candidates}},
    )
    job.alert("candidate_persona", reason, {"candidates": candidates, "run_id": logged.run_id})
    ledger.finish(job.settings, cmd.command_id, "candidate_persona", reason, run_id=logged.run_id)
    log.warning("command %s: %s", cmd.command_id, reason)
    return Outcome(
        status="candidate_persona",
        command_id=cmd.command_id,
        reason=reason,
        champion_version=champion.version,
        run_id=logged.run_id,
        details={"candidates": candidates, "fit_seconds": metrics["fit_seconds"]},
    )
