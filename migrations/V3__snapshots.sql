-- Aggregate snapshots: a cache of a stream's folded state at some version, written in
-- the same transaction as the events it includes. Never a source of truth: deleting
-- every row only makes commands read whole streams again.
CREATE TABLE es.snapshots (
    stream_id   text PRIMARY KEY,
    version     bigint  NOT NULL,
    schema      integer NOT NULL,
    state       jsonb   NOT NULL,
    last_tx     text    NOT NULL,
    last_pos    bigint  NOT NULL
);
