-- Personal data lives here, never in events, so a user can be erased without
-- rewriting history. Events refer to users by id only.
CREATE TABLE users (
    id            uuid PRIMARY KEY,
    email         text NOT NULL,
    name          text NOT NULL,
    password_hash text NOT NULL,
    roles         text[] NOT NULL DEFAULT ARRAY['customer'],
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_idx ON users (lower(email));

-- Command idempotency: stored in the same transaction as the events a command wrote.
CREATE TABLE es.idempotency (
    caller        text        NOT NULL,
    key           text        NOT NULL,
    request_hash  bytea       NOT NULL,
    status        smallint    NOT NULL,
    body          jsonb       NOT NULL,
    headers       jsonb       NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (caller, key)
);
