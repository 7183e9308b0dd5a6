-- Experiments (design §12) are admin changes and live in the event store; this index
-- answers "is an experiment running for this key?" under the key's lock.
CREATE INDEX events_experiment_key_idx ON es.events ((data->>'key'))
    WHERE event_type = 'ExperimentStarted';

-- Behaviour data: what customers were shown and what they looked at. High volume, kept
-- for a while and then deleted, so it stays out of the hash-chained, append-only
-- ledger (es.events): deleting it breaks no chain, and no projection is built from it,
-- so a rebuild equals the incremental read models whatever has been deleted.
CREATE SCHEMA behaviour;

-- One row per recommendation answer: who saw which products, under which variant.
CREATE TABLE behaviour.exposures (
    id             uuid PRIMARY KEY,          -- the answer's recommendation_id
    user_id        uuid NOT NULL,
    experiment_key text NOT NULL,             -- 'default' without a running experiment
    experiment_id  uuid,
    variant        text NOT NULL,
    products       uuid[] NOT NULL,
    at             timestamptz NOT NULL
);
CREATE INDEX exposures_user_idx ON behaviour.exposures (user_id, at);
CREATE INDEX exposures_experiment_idx ON behaviour.exposures (experiment_id, variant);

-- The first time a user was assigned to an experiment's variant.
CREATE TABLE behaviour.assignments (
    experiment_id uuid NOT NULL,
    user_id       uuid NOT NULL,
    variant       text NOT NULL,
    at            timestamptz NOT NULL,
    PRIMARY KEY (experiment_id, user_id)
);

CREATE TABLE behaviour.interactions (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id           uuid NOT NULL,
    product_id        uuid NOT NULL,
    category_id       uuid,                   -- the product's category when it happened
    kind              text NOT NULL,          -- view, click, wishlist
    recommendation_id uuid,
    at                timestamptz NOT NULL
);
CREATE INDEX interactions_at_idx ON behaviour.interactions (at);
CREATE INDEX interactions_recommendation_idx ON behaviour.interactions (recommendation_id)
    WHERE recommendation_id IS NOT NULL;

-- Running counts of the interactions kept, for ranking: raised with every insert and
-- lowered by the retention sweep in the same transaction as its delete.
CREATE TABLE behaviour.category_counts (
    user_id     uuid NOT NULL,
    category_id uuid NOT NULL,
    clicks      bigint NOT NULL DEFAULT 0,
    views       bigint NOT NULL DEFAULT 0,
    wishlists   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, category_id)
);
CREATE TABLE behaviour.product_counts (
    product_id uuid PRIMARY KEY,
    clicks     bigint NOT NULL DEFAULT 0,
    views      bigint NOT NULL DEFAULT 0,
    wishlists  bigint NOT NULL DEFAULT 0
);
