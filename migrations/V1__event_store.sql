-- The event store: one append-only table of events plus a per-stream head row that
-- carries the current version and the last hash of the stream's chain.
CREATE SCHEMA IF NOT EXISTS es;

CREATE TABLE es.streams (
    stream_id  text PRIMARY KEY,
    version    bigint NOT NULL CHECK (version > 0),
    last_hash  bytea  NOT NULL
);

CREATE TABLE es.events (
    position       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The writing transaction; readers order by (tx_id, position) and only read below
    -- the oldest in-flight transaction, so a late commit is never skipped.
    tx_id          xid8        NOT NULL DEFAULT pg_current_xact_id(),
    stream_id      text        NOT NULL,
    version        bigint      NOT NULL CHECK (version > 0),
    event_id       uuid        NOT NULL UNIQUE,
    event_type     text        NOT NULL,
    schema_version integer     NOT NULL,
    data           jsonb       NOT NULL,
    metadata       jsonb       NOT NULL,
    recorded_at    timestamptz NOT NULL,
    -- sha256(previous hash of the stream || canonical bytes of this event)
    hash           bytea       NOT NULL,
    UNIQUE (stream_id, version)
);

CREATE INDEX events_tx_position_idx ON es.events (tx_id, position);

-- Append-only, enforced by the database itself, whoever connects.
CREATE FUNCTION es.reject_event_mutation() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'es.events is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE ON es.events
    FOR EACH ROW EXECUTE FUNCTION es.reject_event_mutation();

CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON es.events
    FOR EACH STATEMENT EXECUTE FUNCTION es.reject_event_mutation();

-- Wake projectors on every append; they also poll, so a lost NOTIFY costs latency only.
CREATE FUNCTION es.notify_append() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tally_events', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_notify
    AFTER INSERT ON es.events
    FOR EACH STATEMENT EXECUTE FUNCTION es.notify_append();
