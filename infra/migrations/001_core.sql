-- Core tables of DESIGN.md. Unqualified names: the runner sets search_path to the target schema,
-- so tests can apply the same migrations to a schema of their own.

CREATE TABLE IF NOT EXISTS persona_labels (
    event_id       uuid PRIMARY KEY,
    respondent_id  text        NOT NULL,
    submitted_at   timestamptz NOT NULL,
    x1 double precision NOT NULL, x2 double precision NOT NULL, x3 double precision NOT NULL,
    x4 double precision NOT NULL, x5 double precision NOT NULL, x6 double precision NOT NULL,
    x7 double precision NOT NULL, x8 double precision NOT NULL, x9 double precision NOT NULL,
    x10 double precision NOT NULL,
    persona_id     integer          NOT NULL,
    persona_name   text             NOT NULL,
    distance       double precision NOT NULL,
    margin         double precision NOT NULL,
    is_outlier     boolean          NOT NULL,
    model_version  integer          NOT NULL,
    labelled_at    timestamptz      NOT NULL
);

-- Trainer and monitor read by event-time range.
CREATE INDEX IF NOT EXISTS persona_labels_submitted_at_idx ON persona_labels (submitted_at);

CREATE TABLE IF NOT EXISTS drift_reports (
    window_id      text PRIMARY KEY,
    window_start   timestamptz NOT NULL,
    window_end     timestamptz NOT NULL,
    event_count    integer     NOT NULL,
    model_version  integer     NOT NULL,
    status         text        NOT NULL CHECK (status IN ('ok', 'warning', 'drift', 'insufficient_data')),
    tests          jsonb       NOT NULL DEFAULT '[]'::jsonb,
    persona_mix    jsonb       NOT NULL DEFAULT '{}'::jsonb,
    report_uri     text,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS drift_reports_window_start_idx ON drift_reports (window_start);
