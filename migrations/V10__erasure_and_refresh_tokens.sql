-- Erasure (design §10, GDPR art. 17): a user's personal data is removed from this row;
-- the row stays (with `erased_at`) so the pseudonymous id is still known.
ALTER TABLE users ALTER COLUMN email DROP NOT NULL;
ALTER TABLE users ALTER COLUMN name DROP NOT NULL;
ALTER TABLE users ALTER COLUMN password_hash DROP NOT NULL;
ALTER TABLE users ADD COLUMN erased_at timestamptz;

-- Refresh tokens: only a SHA-256 of each (they are 256 random bits) is kept. A login
-- starts a chain; each refresh marks its token used and adds the next one to the chain.
CREATE TABLE refresh_tokens (
    hash       bytea PRIMARY KEY,
    user_id    uuid NOT NULL,
    chain      uuid NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    revoked_at timestamptz
);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id) WHERE revoked_at IS NULL;
CREATE INDEX refresh_tokens_chain_idx ON refresh_tokens (chain);
