-- Outbound webhooks (design §13): endpoints, the delivery queue (one row per endpoint
-- and public event, delivered in `id` order per endpoint) and the dispatcher's own
-- state, all written in the dispatcher's batch transaction with its checkpoint.
CREATE SCHEMA webhooks;

CREATE TABLE webhooks.endpoints (
    id              uuid PRIMARY KEY,
    url             text NOT NULL,
    event_types     text[] NOT NULL,
    description     text NOT NULL DEFAULT '',
    -- Needed in clear to sign; shown to the admin once, never logged.
    secret          text NOT NULL,
    -- During a rotation the old secret signs too, until `previous_until`.
    previous_secret text,
    previous_until  timestamptz,
    created_by      uuid,
    created_at      timestamptz NOT NULL,
    -- The store's safe head when it was created: it gets the events committed after.
    after_tx_id     bigint NOT NULL DEFAULT 0,
    after_position  bigint NOT NULL DEFAULT 0,
    -- Set on the first failed attempt after a success; 24 h later the endpoint is disabled.
    failing_since   timestamptz,
    disabled_at     timestamptz
);

CREATE TABLE webhooks.deliveries (
    id               bigserial PRIMARY KEY,
    endpoint_id      uuid NOT NULL REFERENCES webhooks.endpoints ON DELETE CASCADE,
    event_id         uuid NOT NULL,
    event_type       text NOT NULL,
    position         bigint NOT NULL,
    -- The exact body sent on every attempt.
    body             text NOT NULL,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts         int NOT NULL DEFAULT 0,
    last_status_code int,
    last_error       text,
    last_attempt_at  timestamptz,
    next_attempt_at  timestamptz NOT NULL,
    created_at       timestamptz NOT NULL,
    delivered_at     timestamptz
);
CREATE INDEX deliveries_pending ON webhooks.deliveries (endpoint_id, id) WHERE status = 'pending';
CREATE INDEX deliveries_by_endpoint ON webhooks.deliveries (endpoint_id, id DESC);

-- The dispatcher's checkpoint in the safe global order.
CREATE TABLE webhooks.cursor (
    single   boolean PRIMARY KEY DEFAULT true CHECK (single),
    tx_id    bigint NOT NULL DEFAULT 0,
    position bigint NOT NULL DEFAULT 0
);
INSERT INTO webhooks.cursor DEFAULT VALUES;

-- What the dispatcher folds to notice `product.low_stock`: units available per product.
CREATE TABLE webhooks.stock (
    product_id uuid PRIMARY KEY,
    available  bigint NOT NULL
);

-- Offers whose start or end is still to be announced (`offer.started`, `offer.ended`).
CREATE TABLE webhooks.offer_schedule (
    offer_id   uuid PRIMARY KEY,
    product_id uuid NOT NULL,
    starts_at  timestamptz NOT NULL,
    ends_at    timestamptz NOT NULL,
    -- The position of the `OfferCreated` event the announcements derive from.
    position   bigint NOT NULL,
    started    boolean NOT NULL DEFAULT false
);
