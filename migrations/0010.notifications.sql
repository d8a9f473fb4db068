-- Notifications: what a person is told in the app and by e-mail.
--
-- A notification row is also its e-mail's place in the outbox: it is written in the same
-- transaction as the event that causes it (by the trigger function nanny_notify, from
-- migrations/functions/nanny_notify.sql, which also creates its triggers on bookings, sitters
-- and reviews), so an event that commits is never without its notification and one that rolls
-- back leaves none. Senders in every process claim queued rows with FOR UPDATE SKIP LOCKED and a
-- lease (next_attempt_at moved ahead), so a process killed mid-send leaves the row to be claimed
-- again once the lease is over (nanny/db/notifications.py).
ALTER TABLE users
    ADD COLUMN email_bookings boolean NOT NULL DEFAULT true,
    ADD COLUMN email_messages boolean NOT NULL DEFAULT true,
    ADD COLUMN email_reviews boolean NOT NULL DEFAULT true;

CREATE TABLE notifications (
    notification_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id          integer NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    kind             text NOT NULL CONSTRAINT notifications_kind_known CHECK (kind IN (
                         'booking_requested', 'booking_confirmed', 'booking_cancelled',
                         'booking_completed', 'booking_expired', 'sitter_approved',
                         'sitter_rejected', 'unread_messages', 'review_received')),
    booking_id       integer REFERENCES bookings (booking_id) ON DELETE CASCADE,
    -- unread_messages: the first and last seq of the messages it lists.
    from_seq         bigint,
    to_seq           bigint,
    created_at       timestamptz NOT NULL DEFAULT now(),
    read_at          timestamptz,
    -- The e-mail: queued until sent, failed (given up, last_error says why), or skipped (the
    -- user turned this kind off, or has no address any more).
    email_status     text NOT NULL DEFAULT 'queued' CONSTRAINT notifications_email_status_known
                         CHECK (email_status IN ('queued', 'sent', 'failed', 'skipped')),
    attempts         smallint NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz,
    last_error       text
);
CREATE INDEX notifications_user_idx ON notifications (user_id, notification_id DESC);
CREATE INDEX notifications_unread_idx ON notifications (user_id, notification_id DESC)
    WHERE read_at IS NULL;
CREATE INDEX notifications_outbox_idx ON notifications (next_attempt_at)
    WHERE email_status = 'queued';
CREATE INDEX notifications_booking_idx ON notifications (booking_id) WHERE booking_id IS NOT NULL;

-- How far each participant of a chat has been sent an unread-messages digest: a digest lists
-- the messages after notified_seq, so each message is in at most one digest.
CREATE TABLE chat_digests (
    chat_id       integer NOT NULL REFERENCES chats (chat_id) ON DELETE CASCADE,
    user_id       integer NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    notified_seq  bigint NOT NULL CHECK (notified_seq >= 0),
    PRIMARY KEY (chat_id, user_id)
);
