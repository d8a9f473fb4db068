-- Tokens ended on the server. A token carries its id (jti) and its user's token generation
-- (gen) at issue: signing out lists the token's id here until it would have expired anyway;
-- changing the password raises the user's generation, ending every token issued before.
ALTER TABLE users
    ADD COLUMN token_generation integer NOT NULL DEFAULT 0 CHECK (token_generation >= 0);

CREATE TABLE revoked_tokens (
    token_id    text PRIMARY KEY CHECK (length(token_id) BETWEEN 1 AND 64),
    user_id     integer NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX revoked_tokens_user_idx ON revoked_tokens (user_id, expires_at);
