-- The insights projection's experiments (design §12), and the recommendation a
-- redemption named.
CREATE TABLE read.experiments (
    id                uuid PRIMARY KEY,
    key               text NOT NULL,
    variants          jsonb NOT NULL,
    attribution_hours integer NOT NULL,
    started_at        timestamptz NOT NULL,
    stopped_at        timestamptz
);
CREATE INDEX experiments_running_idx ON read.experiments (key) WHERE stopped_at IS NULL;

ALTER TABLE read.redemptions ADD COLUMN recommendation_id uuid;

-- The fulfilment queue (oldest first) and the `popular` strategy (the last 7 days).
CREATE INDEX redemptions_created_idx ON read.redemptions (created_at, id);
