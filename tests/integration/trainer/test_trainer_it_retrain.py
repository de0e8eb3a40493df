"""Retraining against real PostgreSQL, MLflow and Kafka: identity, gate, dedup, ModelUpdated."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pytest
from trainer_helpers import FEB, blobs, command, insert_labels, read_all

from personas import db, registry
from personas.catalogue import Catalogue
from personas.model import CentroidModel
from personas.settings import Settings
from trainer.bootstrap import bootstrap
from trainer.fitting import fit_kmeans
from trainer.retrain import handle_command
from trainer.settings import TrainerSettings

WEEK = timedelta(days=7)


def _shift() -> np.ndarray:
    """A realistic drift: Steve and Pat move by 1.5–2 units (of std 2), Haley stays."""
    shift = np.zeros((3, 10))
    shift[0, :2] = 1.5
    shift[2, 5:9] = -1.0
    return shift


def _versions(s: Settings) -> list[int]:
    found = registry.client(s).search_model_versions(f"name = '{s.model_name}'")
    return sorted(int(v.version) for v in found)


def _ledger(s: Settings) -> list[tuple[str, int | None]]:
    with db.connect(s, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT status, version FROM trainer_commands ORDER BY received_at"
        ).fetchall()
    return [(r[0], r[1]) for r in rows]


def test_retrain_follows_the_shift_and_keeps_persona_ids(
    isolated_settings: Settings,
    trainer_settings: TrainerSettings,
    catalogue: Catalogue,
    vendor_model: CentroidModel,
) -> None:
    s, ts = isolated_settings, trainer_settings
    bootstrap(s, trainer_settings=ts)
    truth = catalogue.centroids + _shift()
    x, which = blobs(truth, 300, 2.0, seed=21)
    insert_labels(s, vendor_model, x, FEB, WEEK)

    cmd = command(FEB, FEB + WEEK, "drift in week 1")
    outcome = handle_command(s, cmd, trainer_settings=ts)

    assert outcome.status == "promoted", outcome.reason
    assert (outcome.version, outcome.champion_version) == (2, 2)
    assert registry.champion_version(s) == 2
    model = registry.load_champion(s)
    assert model is not None
    assert model.persona_ids == catalogue.ids
    assert model.persona_names == catalogue.names
    err_new = np.linalg.norm(model.centroids - truth, axis=1)
    err_old = np.linalg.norm(catalogue.centroids - truth, axis=1)
    assert (err_new < 0.6).all(), err_new
    assert err_new[0] < err_old[0] / 2 and err_new[2] < err_old[2] / 2
    assert outcome.details["centroid_shift"]["0"] == pytest.approx(err_old[0], abs=0.6)
    assert model.outlier_distance == pytest.approx(10.9, rel=0.1)
    assert model.metadata["range_end"] == (FEB + WEEK).isoformat()

    reference = registry.load_reference(s, 2)
    assert len(reference) == 900
    assert reference["persona_id"].value_counts().sort_index().tolist() == [300, 300, 300]
    assert str(reference["submitted_at"].min()) == str(FEB)
    labels = model.label(x)
    assert (labels.persona_id == np.asarray(catalogue.ids)[which]).mean() > 0.99

    updates = read_all(s, s.topics.model_updates)
    assert [(u[1]["version"], u[1]["previous_version"]) for u in updates] == [(1, None), (2, 1)]
    assert updates[1][1]["run_id"] == outcome.run_id
    assert {u[0] for u in updates} == {s.model_name}

    # The same range again, the same command redelivered, an older range, and a later range
    # requested before version 2 existed (judged against version 1): nothing trains.
    again = handle_command(s, command(FEB, FEB + WEEK, "again"), trainer_settings=ts)
    redelivered = handle_command(s, cmd, trainer_settings=ts)
    older = handle_command(s, command(FEB, FEB + WEEK / 2, "old"), trainer_settings=ts)
    late = command(FEB + WEEK, FEB + 2 * WEEK, "queued", requested_at=cmd.requested_at)
    outdated = handle_command(s, late, trainer_settings=ts)
    assert [o.status for o in (again, redelivered, older, outdated)] == [
        "duplicate",
        "duplicate",
        "stale",
        "stale",
    ]
    assert "already trained" in again.reason
    assert "not after the champion's training range" in older.reason
    assert "before the current champion (version 2" in outdated.reason
    assert _versions(s) == [1, 2]
    assert len(read_all(s, s.topics.model_updates)) == 2
    assert read_all(s, s.topics.alerts) == []
    assert _ledger(s) == [("promoted", 2), ("duplicate", None), ("stale", None), ("stale", None)]


def test_cold_start_cluster_order_still_maps_to_the_right_persona(
    isolated_settings: Settings,
    trainer_settings: TrainerSettings,
    catalogue: Catalogue,
    vendor_model: CentroidModel,
) -> None:
    s = isolated_settings
    truth = catalogue.centroids + _shift()
    x, which = blobs(truth, 300, 2.0, seed=22)
    # Pick a seed for which k-means++ numbers the clusters differently from the personas.
    seed = next(
        seed
        for seed in range(50)
        if np.argmin(
            np.linalg.norm(fit_kmeans(x, 3, seed=seed).centroids[:, None] - truth[None], axis=2),
            axis=1,
        ).tolist()
        != [0, 1, 2]
    )
    ts = trainer_settings.model_copy(update={"init": "k-means++", "seed": seed})
    bootstrap(s, trainer_settings=ts)
    insert_labels(s, vendor_model, x, FEB, WEEK)

    outcome = handle_command(s, command(FEB, FEB + WEEK), trainer_settings=ts)

    assert outcome.status == "promoted", outcome.reason
    model = registry.load_champion(s)
    assert model is not None and model.version == 2
    assert model.persona_ids == catalogue.ids
    assert (np.linalg.norm(model.centroids - truth, axis=1) < 0.6).all()
    assert (model.label(x).persona_id == np.asarray(catalogue.ids)[which]).mean() > 0.99


def test_gate_failure_keeps_the_champion(
    isolated_settings: Settings,
    trainer_settings: TrainerSettings,
    catalogue: Catalogue,
    vendor_model: CentroidModel,
) -> None:
    s, ts = isolated_settings, trainer_settings
    bootstrap(s, trainer_settings=ts)
    # Week 1: only 150 rows. Week 2: persona 2 vanished (a refit would split a persona in two).
    x_few, _ = blobs(catalogue.centroids, 50, 2.0, seed=23)
    insert_labels(s, vendor_model, x_few, FEB, WEEK)
    x_two, _ = blobs(catalogue.centroids[:2], 300, 2.0, seed=24)
    insert_labels(s, vendor_model, x_two, FEB + WEEK, WEEK)

    few = handle_command(s, command(FEB, FEB + WEEK), trainer_settings=ts)
    vanished = handle_command(s, command(FEB + WEEK, FEB + 2 * WEEK), trainer_settings=ts)

    assert few.status == "gate_failed"
    assert few.reason == "only 150 rows in the range, the gate needs 300"
    assert vanished.status == "gate_failed"
    assert "hold fewer than 20 rows" in vanished.reason
    assert "worse than the champion's" in vanished.reason
    assert registry.champion_version(s) == 1
    assert _versions(s) == [1]
    assert len(read_all(s, s.topics.model_updates)) == 1

    alerts = [value for _, value in read_all(s, s.topics.alerts)]
    assert [a["kind"] for a in alerts] == ["gate_failed", "gate_failed"]
    assert [a["command_id"] for a in alerts] == [str(few.command_id), str(vanished.command_id)]
    assert alerts[0]["details"]["failures"] == [few.reason]

    run = registry.client(s).get_run(vanished.run_id)
    assert run.data.tags["decision"] == "gate_failed"
    assert run.data.tags["gate_reason"] == vanished.reason
    assert run.data.metrics["silhouette"] < run.data.metrics["champion_silhouette"] - 0.05
    assert _ledger(s) == [("gate_failed", None), ("gate_failed", None)]


def test_new_group_is_a_candidate_persona_not_a_rename(
    isolated_settings: Settings,
    trainer_settings: TrainerSettings,
    catalogue: Catalogue,
    vendor_model: CentroidModel,
) -> None:
    s, ts = isolated_settings, trainer_settings
    bootstrap(s, trainer_settings=ts)
    x, _ = blobs(catalogue.centroids, 300, 2.0, seed=25)
    newcomer, _ = blobs(np.full((1, 10), 8.0), 120, 2.0, seed=26)  # 12 % of the rows
    insert_labels(s, vendor_model, np.vstack([x, newcomer]), FEB, WEEK)

    outcome = handle_command(s, command(FEB, FEB + WEEK), trainer_settings=ts)

    assert outcome.status == "candidate_persona", outcome.reason
    assert registry.champion_version(s) == 1
    assert _versions(s) == [1]
    alerts = [value for _, value in read_all(s, s.topics.alerts)]
    assert [a["kind"] for a in alerts] == ["candidate_persona"]
    candidates = alerts[0]["details"]["candidates"]
    assert len(candidates) == 1
    assert candidates[0]["distance"] > candidates[0]["threshold"]
    assert json.dumps(candidates) == json.dumps(outcome.details["candidates"])
    assert len(read_all(s, s.topics.model_updates)) == 1


@pytest.mark.parametrize("died", ["before_promote", "before_ledger"])
def test_a_command_interrupted_after_registering_is_finished_not_trained_again(
    isolated_settings: Settings,
    trainer_settings: TrainerSettings,
    catalogue: Catalogue,
    vendor_model: CentroidModel,
    monkeypatch: pytest.MonkeyPatch,
    died: str,
) -> None:
    """The trainer dies after registering version 2 (before moving the alias, or before writing
    the ledger); the redelivered command promotes that version instead of registering a third."""
    from trainer import ledger, register

    s, ts = isolated_settings, trainer_settings
    bootstrap(s, trainer_settings=ts)
    x, _ = blobs(catalogue.centroids + _shift(), 300, 2.0, seed=23)
    insert_labels(s, vendor_model, x, FEB, WEEK)
    cmd = command(FEB, FEB + WEEK, "drift in week 1")

    class Died(Exception):
        pass

    def die(*args: object, **kwargs: object) -> None:
        raise Died(died)

    if died == "before_promote":
        monkeypatch.setattr(register, "promote", die)
    else:
        real_finish = ledger.finish

        def finish(settings: Settings, command_: object, status: str, *a: object, **k: object):
            if status == "promoted":
                die()
            return real_finish(settings, command_, status, *a, **k)  # type: ignore[arg-type]

        monkeypatch.setattr(ledger, "finish", finish)
    with pytest.raises(Died):
        handle_command(s, cmd, trainer_settings=ts)
    monkeypatch.undo()
    assert _versions(s) == [1, 2]
    assert _ledger(s) == [("received", None)]
    assert registry.champion_version(s) == (1 if died == "before_promote" else 2)

    outcome = handle_command(s, cmd, trainer_settings=ts)  # the redelivery
    assert outcome.status == "promoted" and outcome.version == 2, outcome.reason
    assert "resumed after an interruption" in outcome.reason
    assert _versions(s) == [1, 2]
    assert registry.champion_version(s) == 2
    assert _ledger(s) == [("promoted", 2)]
    updates = [
        (u[1]["version"], u[1]["previous_version"]) for u in read_all(s, s.topics.model_updates)
    ]
    # Died before the ledger: the first attempt had announced version 2 already, the resumed one
    # cannot know that and says it again (consumers compare versions).
    repeats = 2 if died == "before_ledger" else 1
    assert updates == [(1, None)] + [(2, 1)] * repeats
