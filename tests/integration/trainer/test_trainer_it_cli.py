"""`persona train request` and `persona train status` against the real stack."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

from trainer_helpers import FEB, blobs, insert_labels, read_all
from typer.testing import CliRunner

from persona_cli import build_app
from personas import db
from personas.catalogue import Catalogue
from personas.model import CentroidModel
from personas.schemas import RetrainCommand
from personas.settings import Settings
from trainer.bootstrap import bootstrap
from trainer.retrain import handle_command
from trainer.settings import TrainerSettings


def test_request_publishes_a_command_and_status_shows_the_decision(
    isolated_settings: Settings,
    trainer_settings: TrainerSettings,
    catalogue: Catalogue,
    vendor_model: CentroidModel,
) -> None:
    s, ts = isolated_settings, trainer_settings
    env = {
        "PERSONA_MODEL_NAME": s.model_name,
        "PERSONA_PG_SCHEMA": s.pg_schema,
        "PERSONA_TOPIC_RETRAIN": s.topics.retrain,
    }
    bootstrap(s, trainer_settings=ts)
    x, _ = blobs(catalogue.centroids + 0.5, 150, 2.0, seed=50)
    insert_labels(s, vendor_model, x, FEB, timedelta(days=7))
    runner = CliRunner()

    result = runner.invoke(
        build_app(),
        ["train", "request", "--start", "2025-02-01", "--end", "2025-02-08", "--reason", "manual"],
        env=env,
    )
    assert result.exit_code == 0, result.output
    messages = read_all(s, s.topics.retrain)
    assert len(messages) == 1
    cmd = RetrainCommand.model_validate(messages[0][1])
    assert (cmd.range_start, cmd.range_end) == (FEB, FEB + timedelta(days=7))
    assert (cmd.reason, cmd.requested_by) == ("manual", "cli")
    assert f"retrain command {cmd.command_id} published" in result.output

    assert handle_command(s, cmd, trainer_settings=ts).status == "promoted"
    with db.connect(s, autocommit=True) as conn:  # another model's decision in the same schema
        conn.execute(
            "INSERT INTO trainer_commands (command_id, model_name, range_start, range_end, reason,"
            " requested_by, requested_at, status) VALUES (%s, %s, %s, %s, 'other', 'cli', now(),"
            " 'failed')",
            (uuid4(), f"{s.model_name}-other", FEB, FEB + timedelta(days=7)),
        )
    status = runner.invoke(build_app(), ["train", "status"], env=env)
    assert status.exit_code == 0, status.output
    lines = status.output.splitlines()
    assert lines[0] == f"{s.model_name}@champion: 2"
    assert len(lines) == 2
    assert " promoted " in lines[1] and " v2 " in lines[1]
    assert "2025-02-01 00:00..2025-02-08 00:00" in lines[1]

    bad = runner.invoke(
        build_app(), ["train", "request", "--start", "2025-02-08", "--end", "2025-02-01"], env=env
    )
    assert bad.exit_code != 0
    assert "--end must be after --start" in str(bad.exception)
