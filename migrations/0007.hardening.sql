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

-- Why a booking was cancelled (nanny.db.bookings.CancelReason), null unless it was: 'owner' or
-- 'sitter' (the participant who cancelled it), 'expired' (the expiry task: pending and
-- unanswered past PENDING_TTL_HOURS, or still pending 24 h after its start), 'user_deleted' (an
-- admin deleted its owner or its sitter). Bookings cancelled before this keep null: who did it
-- was not recorded.
ALTER TABLE bookings
    ADD COLUMN cancel_reason text
        CONSTRAINT bookings_cancel_reason_known
        CHECK (cancel_reason IN ('owner', 'sitter', 'expired', 'user_deleted')),
    ADD CONSTRAINT bookings_cancel_reason_only_when_cancelled
        CHECK (cancel_reason IS NULL OR status = 'cancelled');
