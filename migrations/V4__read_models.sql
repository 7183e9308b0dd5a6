-- Read models (design §6). Written only by the projector; each projection owns its
-- tables and one checkpoint row, updated in the same transaction as the batch it
-- applied. Projection code names tables without a schema and runs with
-- search_path = read, so `projector rebuild` can build fresh copies in a staging
-- schema beside these and swap them in.

CREATE SCHEMA read;

CREATE TABLE read.checkpoints (
    projection     text PRIMARY KEY,
    tx_id          bigint NOT NULL DEFAULT 0,
    position       bigint NOT NULL DEFAULT 0,
    events_applied bigint NOT NULL DEFAULT 0,
    -- Bumped by every rebuild, so the running projector knows to repair its caches.
    generation     bigint NOT NULL DEFAULT 0,
    last_event_at  timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
INSERT INTO read.checkpoints (projection) VALUES ('accounts'), ('catalog'), ('orders'), ('insights');

-- accounts ---------------------------------------------------------------------------
-- `balance` is the fold of the events; `lots` carries every lot so readers can leave
-- out lots past their expiry before an expiry event has been recorded.
CREATE TABLE read.balances (
    user_id         uuid PRIMARY KEY,
    balance         bigint NOT NULL,
    lifetime_earned bigint NOT NULL,
    lifetime_spent  bigint NOT NULL,
    lots            jsonb NOT NULL,
    version         bigint NOT NULL,
    updated_at      timestamptz NOT NULL
);

CREATE TABLE read.ledger (
    user_id       uuid NOT NULL,
    version       bigint NOT NULL,
    at            timestamptz NOT NULL,
    kind          text NOT NULL,
    delta         bigint NOT NULL,
    balance_after bigint NOT NULL,
    reference     text,
    PRIMARY KEY (user_id, version)
);

-- catalog ----------------------------------------------------------------------------
CREATE TABLE read.categories (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    description text NOT NULL,
    created_at  timestamptz NOT NULL
);

CREATE TABLE read.products (
    id            uuid PRIMARY KEY,
    name          text NOT NULL,
    description   text NOT NULL,
    category_id   uuid NOT NULL,
    point_cost    bigint NOT NULL,
    image_url     text,
    in_offer_pool boolean NOT NULL,
    active        boolean NOT NULL,
    on_hand       bigint NOT NULL,
    reserved      bigint NOT NULL,
    available     bigint GENERATED ALWAYS AS (on_hand - reserved) STORED,
    search        tsvector GENERATED ALWAYS AS (
                      setweight(to_tsvector('english', name), 'A')
                      || setweight(to_tsvector('english', description), 'B')) STORED,
    version       bigint NOT NULL,
    listed_at     timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);
CREATE INDEX products_search_idx ON read.products USING GIN (search);
CREATE INDEX products_category_idx ON read.products (category_id);

CREATE TABLE read.packages (
    id                uuid PRIMARY KEY,
    name              text NOT NULL,
    description       text NOT NULL,
    price             numeric NOT NULL,
    currency          text NOT NULL,
    points            bigint NOT NULL,
    points_valid_days integer,
    active            boolean NOT NULL,
    created_at        timestamptz NOT NULL
);

-- orders -----------------------------------------------------------------------------
CREATE TABLE read.purchases (
    id             uuid PRIMARY KEY,
    user_id        uuid NOT NULL,
    package_id     uuid NOT NULL,
    price          numeric NOT NULL,
    currency       text NOT NULL,
    points         bigint NOT NULL,
    status         text NOT NULL,
    payment_ref    text,
    failure_reason text,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);
CREATE INDEX purchases_user_idx ON read.purchases (user_id, created_at DESC, id DESC);

CREATE TABLE read.redemptions (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL,
    product_id    uuid NOT NULL,
    quantity      bigint NOT NULL,
    points        bigint NOT NULL,
    status        text NOT NULL,
    cancel_reason text,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);
CREATE INDEX redemptions_user_idx ON read.redemptions (user_id, created_at DESC, id DESC);

-- insights ---------------------------------------------------------------------------
-- The category each product was in when a user acted on it.
CREATE TABLE read.product_categories (
    product_id  uuid PRIMARY KEY,
    category_id uuid NOT NULL
);

CREATE TABLE read.category_affinity (
    user_id     uuid NOT NULL,
    category_id uuid NOT NULL,
    redeemed    bigint NOT NULL,
    clicks      bigint NOT NULL,
    views       bigint NOT NULL,
    PRIMARY KEY (user_id, category_id)
);

CREATE TABLE read.product_popularity (
    product_id uuid PRIMARY KEY,
    redeemed   bigint NOT NULL,
    clicks     bigint NOT NULL,
    views      bigint NOT NULL
);
