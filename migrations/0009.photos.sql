-- Photos: pets' profile photos and pictures sent in a booking's chat.
--
-- An image row is one upload, re-encoded into two files (the display size and a thumbnail),
-- each kept once per content in media_files under its SHA-256 (the storage key). `refs` counts
-- the image rows using a file, kept by the trigger below whichever way a row goes (deleted by
-- the API, by the expiry task, or by a cascade from its pet), so a file with no user left is
-- found with one index scan and removed together with its row (nanny/db/media.py).
CREATE TABLE media_files (
    key         text PRIMARY KEY CHECK (key ~ '^[0-9a-f]{64}$'),
    bytes       integer NOT NULL CHECK (bytes > 0),
    refs        integer NOT NULL DEFAULT 0 CHECK (refs >= 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX media_files_unreferenced_idx ON media_files (created_at) WHERE refs = 0;

-- An image belongs to a booking (a chat attachment, claimed by at most one message) or to a pet
-- (its photo, one per pet). Its uploader is a participant of the booking, or the pet's owner.
CREATE TABLE images (
    image_id      integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uploader_id   integer NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    booking_id    integer REFERENCES bookings (booking_id) ON DELETE CASCADE,
    pet_id        integer REFERENCES pets (pet_id) ON DELETE CASCADE,
    message_id    bigint REFERENCES messages (message_id) ON DELETE CASCADE,
    position      smallint CHECK (position BETWEEN 1 AND 4),
    content_type  text NOT NULL CHECK (content_type IN ('image/jpeg', 'image/webp')),
    width         integer NOT NULL CHECK (width > 0),
    height        integer NOT NULL CHECK (height > 0),
    bytes         integer NOT NULL CHECK (bytes > 0),
    full_key      text NOT NULL REFERENCES media_files (key),
    thumb_key     text NOT NULL REFERENCES media_files (key),
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT images_one_home CHECK (num_nonnulls(booking_id, pet_id) = 1),
    CONSTRAINT images_message_of_booking
        CHECK (message_id IS NULL OR (booking_id IS NOT NULL AND position IS NOT NULL))
);
CREATE UNIQUE INDEX images_pet_key ON images (pet_id) WHERE pet_id IS NOT NULL;
CREATE UNIQUE INDEX images_message_position_key ON images (message_id, position)
    WHERE message_id IS NOT NULL;
CREATE INDEX images_unclaimed_idx ON images (created_at)
    WHERE booking_id IS NOT NULL AND message_id IS NULL;
CREATE INDEX images_uploader_idx ON images (uploader_id);
CREATE INDEX images_full_key_idx ON images (full_key);
CREATE INDEX images_thumb_key_idx ON images (thumb_key);

CREATE FUNCTION nanny_count_media_refs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE media_files SET refs = refs + 1 WHERE key = NEW.full_key;
        UPDATE media_files SET refs = refs + 1 WHERE key = NEW.thumb_key;
        RETURN NEW;
    END IF;
    UPDATE media_files SET refs = refs - 1 WHERE key = OLD.full_key;
    UPDATE media_files SET refs = refs - 1 WHERE key = OLD.thumb_key;
    RETURN OLD;
END
$$;
CREATE TRIGGER images_count_media_refs AFTER INSERT OR DELETE ON images
    FOR EACH ROW EXECUTE FUNCTION nanny_count_media_refs();

-- A message with photos may have no text; nanny_store_messages refuses one with neither.
ALTER TABLE messages DROP CONSTRAINT messages_content_check;
ALTER TABLE messages ADD CONSTRAINT messages_content_check CHECK (length(content) <= 4000);
