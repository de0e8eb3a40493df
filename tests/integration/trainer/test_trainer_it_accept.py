"""`persona train accept`: a person names a held candidate persona and it goes live."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from trainer_helpers import FEB, blobs, command, insert_labels, read_all
from typer.testing import CliRunner

from persona_cli import build_app
from personas import db, registry
from personas.catalogue import Catalogue
from personas.champion import APPROVED_KEY, ChampionFollower, check_candidate
from personas.model import CentroidModel
from personas.settings import Settings
from trainer.accept import CannotAccept, accept_candidates
from trainer.bootstrap import bootstrap
from trainer.retrain import handle_command
from trainer.settings import TrainerSettings

WEEK = timedelta(days=7)


def test_accepted_candidate_becomes_a_named_persona_the_stream_accepts(
    isolated_settings: Settings,
    trainer_settings: TrainerSettings,
    catalogue: Catalogue,
    vendor_model: CentroidModel,
) -> None:
    s, ts = isolated_settings, trainer_settings
    env = {"PERSONA_MODEL_NAME": s.model_name, "PERSONA_PG_SCHEMA": s.pg_schema}
    env.update({f"PERSONA_TOPIC_{k.upper()}": v for k, v in s.topics.model_dump().items()})
    bootstrap(s, trainer_settings=ts)
    x, which = blobs(catalogue.centroids, 300, 2.0, seed=25)
    newcomer, _ = blobs(np.full((1, 10), 8.0), 120, 2.0, seed=26)  # 12 % of the rows
    insert_labels(s, vendor_model, np.vstack([x, newcomer]), FEB, WEEK)
    cmd = command(FEB, FEB + WEEK)
    assert handle_command(s, cmd, trainer_settings=ts).status == "candidate_persona"
    runner = CliRunner()

    status = runner.invoke(build_app(), ["train", "status"], env=env)
    assert f"{cmd.command_id} candidate_persona" in status.output

    accept = ["train", "accept", str(cmd.command_id)]
    two = runner.invoke(build_app(), [*accept, "--name", "A", "--name", "B"], env=env)
    assert two.exit_code != 0 and "1 candidate(s): give one non-empty --name each" in str(
        two.exception
    )
    taken = runner.invoke(build_app(), [*accept, "--name", catalogue.names[0]], env=env)
    assert taken.exit_code != 0 and "already in use" in str(taken.exception)
    assert registry.champion_version(s) == 1

    done = runner.invoke(build_app(), [*accept, "--name", "Frugal Fiona"], env=env)
    assert done.exit_code == 0, done.output
    assert "promoted version 2" in done.output

    model = registry.load_champion(s)
    assert model is not None and model.version == 2
    new_id = max(catalogue.ids) + 1
    assert model.persona_ids == (*catalogue.ids, new_id)
    assert model.persona_names == (*catalogue.names, "Frugal Fiona")
    assert model.metadata["approved_new_personas"] == [new_id]
    assert (model.label(newcomer).persona_id == new_id).mean() > 0.95
    assert (model.label(x).persona_id == np.asarray(catalogue.ids)[which]).mean() > 0.95
    # Stream workers refuse unknown persona ids, but take the approved one.
    check_candidate(model, allow_new_personas=False)
    reference = registry.load_reference(s, 2)
    assert new_id in set(reference["persona_id"])

    updates = read_all(s, s.topics.model_updates)
    assert [(u[1]["version"], u[1]["previous_version"]) for u in updates] == [(1, None), (2, 1)]
    with db.connect(s, autocommit=True) as conn:
        row = conn.execute(
            "SELECT status, version, detail FROM trainer_commands WHERE command_id = %s",
            (cmd.command_id,),
        ).fetchone()
    assert row is not None and row[:2] == ("promoted", 2)
    assert f"new persona(s) {new_id} 'Frugal Fiona'" in row[2]

    again = runner.invoke(build_app(), [*accept, "--name", "Frugal Fiona"], env=env)
    assert again.exit_code != 0 and "is 'promoted', not held" in str(again.exception)


def test_an_accept_interrupted_after_registering_is_finished_not_fitted_again(
    isolated_settings: Settings,
    trainer_settings: TrainerSettings,
    catalogue: Catalogue,
    vendor_model: CentroidModel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The accept dies after registering version 2, before the alias moved; accepting again
    finishes version 2 (the old accept had no resume: it fitted again and registered version 3
    beside an orphan)."""
    from trainer import register

    s, ts = isolated_settings, trainer_settings
    bootstrap(s, trainer_settings=ts)
    x, _ = blobs(catalogue.centroids, 300, 2.0, seed=25)
    newcomer, _ = blobs(np.full((1, 10), 8.0), 120, 2.0, seed=26)
    insert_labels(s, vendor_model, np.vstack([x, newcomer]), FEB, WEEK)
    cmd = command(FEB, FEB + WEEK)
    assert handle_command(s, cmd, trainer_settings=ts).status == "candidate_persona"

    class Died(Exception):
        pass

    def die(*_a: object, **_k: object) -> None:
        raise Died

    monkeypatch.setattr(register, "promote", die)
    with pytest.raises(Died):
        accept_candidates(s, cmd.command_id, ["Frugal Fiona"], trainer_settings=ts)
    monkeypatch.undo()

    def versions() -> list[int]:
        found = registry.client(s).search_model_versions(f"name = '{s.model_name}'")
        return sorted(int(v.version) for v in found)

    assert versions() == [1, 2] and registry.champion_version(s) == 1

    with pytest.raises(CannotAccept, match=r"with the name\(s\) \['Frugal Fiona'\]"):
        accept_candidates(s, cmd.command_id, ["Someone Else"], trainer_settings=ts)
    outcome = accept_candidates(s, cmd.command_id, ["Frugal Fiona"], trainer_settings=ts)

    assert (outcome.status, outcome.version) == ("promoted", 2), outcome.reason
    assert "resumed after an interruption" in outcome.reason
    assert versions() == [1, 2] and registry.champion_version(s) == 2
    model = registry.load_champion(s)
    assert model is not None and model.persona_names[-1] == "Frugal Fiona"
    with db.connect(s, autocommit=True) as conn:
        row = conn.execute(
            "SELECT status, version FROM trainer_commands WHERE command_id = %s",
            (cmd.command_id,),
        ).fetchone()
    assert row == ("promoted", 2)
    updates = read_all(s, s.topics.model_updates)
    assert [(u[1]["version"], u[1]["previous_version"]) for u in updates] == [(1, None), (2, 1)]


def test_a_retrain_of_an_accepted_model_carries_the_approval_to_a_fresh_follower(
    isolated_settings: Settings,
    trainer_settings: TrainerSettings,
    catalogue: Catalogue,
    vendor_model: CentroidModel,
    tmp_path: Path,
) -> None:
    """v2 accepts a persona; v3 retrains v2. A worker starting on v3 (it never saw v2) takes it,
    because v3 lists v2's approval — it used to list none, and a follower that skipped v2
    refused v3 and every later champion."""
    s, ts = isolated_settings, trainer_settings
    bootstrap(s, trainer_settings=ts)
    x, _ = blobs(catalogue.centroids, 300, 2.0, seed=25)
    newcomer, _ = blobs(np.full((1, 10), 8.0), 120, 2.0, seed=26)
    insert_labels(s, vendor_model, np.vstack([x, newcomer]), FEB, WEEK)
    held = command(FEB, FEB + WEEK)
    assert handle_command(s, held, trainer_settings=ts).status == "candidate_persona"
    accepted = accept_candidates(s, held.command_id, ["Frugal Fiona"], trainer_settings=ts)
    assert (accepted.status, accepted.version) == ("promoted", 2), accepted.reason
    v2 = registry.load_version(s, 2)
    new_id = v2.persona_ids[-1]

    shifted = np.vstack([v2.centroids[:-1], v2.centroids[-1:]]) + 0.6
    x3, _ = blobs(shifted, 200, 2.0, seed=27)
    insert_labels(s, v2, x3, FEB + WEEK, WEEK)
    retrained = handle_command(s, command(FEB + WEEK, FEB + 2 * WEEK), trainer_settings=ts)
    assert (retrained.status, retrained.version) == ("promoted", 3), retrained.reason

    v3 = registry.load_version(s, 3)
    assert v3.persona_ids == v2.persona_ids
    assert v3.metadata[APPROVED_KEY] == [new_id]
    check_candidate(v3, allow_new_personas=False)
    follower = ChampionFollower(s, cache_dir=tmp_path, poll_interval_s=3600)
    assert follower.load().model.version == 3
    assert follower.status.last_error is None
