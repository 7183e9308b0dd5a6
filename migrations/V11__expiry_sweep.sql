-- The expiry sweep's work list: when each account next has a lot with points left to
-- expire (`next_expiry`) or to give notice of (`next_notice`: the soonest expiry among
-- lots not noticed yet). Kept by the accounts projection from the account's own fold.
ALTER TABLE read.balances
    ADD COLUMN next_expiry timestamptz,
    ADD COLUMN next_notice timestamptz;

UPDATE read.balances SET
    next_expiry = (SELECT min((l->>'expires_at')::timestamptz) FROM jsonb_array_elements(lots) l
                   WHERE (l->>'remaining')::bigint > 0),
    next_notice = (SELECT min((l->>'expires_at')::timestamptz) FROM jsonb_array_elements(lots) l
                   WHERE (l->>'remaining')::bigint > 0 AND NOT coalesce((l->>'noticed')::boolean, false));

CREATE INDEX balances_next_expiry ON read.balances (next_expiry) WHERE next_expiry IS NOT NULL;
CREATE INDEX balances_next_notice ON read.balances (next_notice) WHERE next_notice IS NOT NULL;
