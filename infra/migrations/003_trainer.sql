-- Trainer: one row per retrain command received, so a redelivered command or a second command for
-- the same event-time range never trains twice, and every decision (promoted, gate failed, held
-- for a candidate persona, duplicate, stale, failed) stays queryable beside the labels.

CREATE TABLE IF NOT EXISTS trainer_commands (
    command_id     uuid PRIMARY KEY,
    model_name     text        NOT NULL,
    range_start    timestamptz NOT NULL,
    range_end      timestamptz NOT NULL,
    reason         text        NOT NULL,
    requested_by   text        NOT NULL,
    requested_at   timestamptz NOT NULL,
    received_at    timestamptz NOT NULL DEFAULT now(),
    status         text        NOT NULL DEFAULT 'received' CHECK (status IN (
                       'received', 'promoted', 'gate_failed', 'candidate_persona',
                       'duplicate', 'stale', 'failed')),
    detail         text,
    version        integer,
    run_id         text,
    finished_at    timestamptz
);

CREATE INDEX IF NOT EXISTS trainer_commands_range_idx
    ON trainer_commands (model_name, range_start, range_end);
