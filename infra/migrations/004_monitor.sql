-- Monitor additions to drift_reports (001_core.sql): the whole DriftReport as sent, the retrain
-- command a window triggered (so the drift policy can be rebuilt at start-up) and which monitor
-- instance decided the window (several instances dedupe on the primary key).

ALTER TABLE drift_reports ADD COLUMN IF NOT EXISTS mean_distance      double precision;
ALTER TABLE drift_reports ADD COLUMN IF NOT EXISTS sampled            boolean NOT NULL DEFAULT false;
ALTER TABLE drift_reports ADD COLUMN IF NOT EXISTS retrain_command_id uuid;
ALTER TABLE drift_reports ADD COLUMN IF NOT EXISTS decided_by         text;
ALTER TABLE drift_reports ADD COLUMN IF NOT EXISTS report             jsonb;
