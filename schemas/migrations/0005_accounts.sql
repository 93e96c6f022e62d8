-- 0004_accounts.sql - fan accounts, login sessions and refresh tokens
-- (docs/accounts.md).
--
-- users was only a placeholder (ids came from minted tokens); it now holds
-- accounts. Account ids come from a sequence; tokens minted by `onsalectl
-- token` may still name any id, with or without an account row.
-- A login opens a session (a refresh-token family). Each refresh rotates the
-- family's current token; presenting a token that was already rotated is
-- taken as theft and revokes the whole session. Tokens are stored as a public
-- selector (the lookup key) and the SHA-256 of their secret verifier.

CREATE SEQUENCE users_user_id_seq OWNED BY users.user_id;
ALTER TABLE users ALTER COLUMN user_id SET DEFAULT nextval('users_user_id_seq');
-- One role per user gave way to a set of granted roles (fan is always in it).
ALTER TABLE users DROP COLUMN role;
ALTER TABLE users ADD COLUMN roles text[] NOT NULL DEFAULT '{fan}'
    CHECK (roles <@ '{fan,seller,scanner,admin}'::text[] AND 'fan' = ANY (roles));
ALTER TABLE users ADD COLUMN email text CHECK (length(email) BETWEEN 3 AND 254);
ALTER TABLE users ADD COLUMN password_hash text CHECK (password_hash LIKE '$argon2id$%');
ALTER TABLE users ADD COLUMN display_name text CHECK (length(display_name) BETWEEN 1 AND 100);
-- Emails are unique case-insensitively (ingress accepts ASCII addresses only,
-- so lower() here and the ingress's ASCII folding agree).
CREATE UNIQUE INDEX users_email_lower ON users (lower(email));

CREATE TABLE login_sessions (
    session_id  bigserial PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    -- The role asked for at login (NULL: the highest granted one); refreshed
    -- access tokens keep it while it is still granted.
    requested_role text CHECK (requested_role IN ('fan', 'seller', 'scanner', 'admin')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,            -- logout or refresh-token reuse
    revoke_reason text CHECK (revoke_reason IN ('logout', 'reuse'))
);
CREATE INDEX login_sessions_user ON login_sessions (user_id);

CREATE TABLE refresh_tokens (
    token_id      bigserial PRIMARY KEY,
    session_id    bigint NOT NULL REFERENCES login_sessions ON DELETE CASCADE,
    selector      text NOT NULL UNIQUE,  -- base64url of 16 random bytes
    verifier_hash text NOT NULL CHECK (length(verifier_hash) = 64), -- hex SHA-256
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    rotated_at    timestamptz           -- set when a refresh replaced it
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

-- Failed-login counters per account (lower-cased email, existing or not) and
-- per client address: fixed windows. UNLOGGED: losing them in a crash only
-- forgives some failures.
CREATE UNLOGGED TABLE login_throttle (
    key         text PRIMARY KEY,        -- 'acct:<email>' or 'addr:<address>'
    failures    integer NOT NULL CHECK (failures > 0),
    window_ends timestamptz NOT NULL
);
CREATE INDEX login_throttle_window ON login_throttle (window_ends);
