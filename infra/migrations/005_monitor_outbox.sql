-- The monitor's outbox (monitor/store.py, monitor/delivery.py): a window's row is committed before
-- its report and retrain command are sent, with what is to be sent (report, retrain_command) and
-- where each topic's partitions ended at that moment (publish_marks). published_at is set once
-- Kafka acknowledged both. A monitor that dies in between finds the row unpublished at restart and
-- reads the topics from the marks: what is already there is not sent again, so consumers see one
-- report per window and one command per episode.

ALTER TABLE drift_reports ADD COLUMN IF NOT EXISTS retrain_command jsonb;
ALTER TABLE drift_reports ADD COLUMN IF NOT EXISTS publish_marks   jsonb;
ALTER TABLE drift_reports ADD COLUMN IF NOT EXISTS published_at    timestamptz;

-- Rows written before this migration were committed only after their messages were acknowledged.
UPDATE drift_reports SET published_at = created_at WHERE published_at IS NULL;

CREATE INDEX IF NOT EXISTS drift_reports_unpublished_idx
    ON drift_reports (window_start) WHERE published_at IS NULL;
