-- The catalog projection's offers (design §11). `ends_effective` is when the offer
-- stopped or stops selling: its `ends_at`, or when it was cancelled if sooner. Whether
-- an offer is live is always decided at read time against these columns.
CREATE TABLE read.offers (
    id                 uuid PRIMARY KEY,
    product_id         uuid NOT NULL,
    title              text,
    point_cost         bigint NOT NULL,
    starts_at          timestamptz NOT NULL,
    ends_at            timestamptz NOT NULL,
    cancelled_at       timestamptz,
    ends_effective     timestamptz GENERATED ALWAYS AS (LEAST(ends_at, COALESCE(cancelled_at, ends_at))) STORED,
    units              bigint,
    units_sold         bigint NOT NULL,
    per_customer_limit bigint,
    created_at         timestamptz NOT NULL
);
CREATE INDEX offers_product_idx ON read.offers (product_id, ends_effective);
CREATE INDEX offers_starts_idx ON read.offers (starts_at, id);
CREATE INDEX offers_ends_idx ON read.offers (ends_effective, id);

-- The offer that priced a redemption (null at the list price).
ALTER TABLE read.redemptions ADD COLUMN offer_id uuid;
