-- Nanny schema: the original's nine tables done properly, plus chat read marks.
-- Users are never hard-deleted by the API: deletion scrubs personal data and sets deleted_at,
-- so bookings, reviews and messages that other people rely on keep their references.

CREATE TABLE users (
    user_id        integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email          text,
    phone          text,
    full_name      text NOT NULL CHECK (length(full_name) BETWEEN 1 AND 200),
    password_hash  text,
    role           text NOT NULL CHECK (role IN ('owner', 'sitter', 'admin')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    deleted_at     timestamptz,
    CONSTRAINT users_live_have_credentials
        CHECK (deleted_at IS NOT NULL OR (email IS NOT NULL AND password_hash IS NOT NULL))
);
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email)) WHERE email IS NOT NULL;
CREATE INDEX users_role_created_idx ON users (role, created_at DESC, user_id DESC) WHERE deleted_at IS NULL;
CREATE INDEX users_created_idx ON users (created_at DESC, user_id DESC) WHERE deleted_at IS NULL;

-- Rating aggregates live here, updated in the same transaction as review writes,
-- so search never aggregates all reviews.
CREATE TABLE sitters (
    user_id           integer PRIMARY KEY REFERENCES users (user_id) ON DELETE CASCADE,
    experience_years  integer NOT NULL DEFAULT 0 CHECK (experience_years BETWEEN 0 AND 80),
    certificates      text NOT NULL DEFAULT '',
    preferences       text NOT NULL DEFAULT '',
    location          text NOT NULL DEFAULT '',
    status            text NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'approved', 'rejected')),
    rating_count      integer NOT NULL DEFAULT 0 CHECK (rating_count >= 0),
    rating_sum        integer NOT NULL DEFAULT 0 CHECK (rating_sum >= 0),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sitters_status_idx ON sitters (status, created_at);

CREATE TABLE pets (
    pet_id      integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner_id    integer NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    type        text NOT NULL CHECK (type IN ('cat', 'dog', 'rodent')),
    age         integer NOT NULL DEFAULT 0 CHECK (age BETWEEN 0 AND 50),
    notes       text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pets_owner_idx ON pets (owner_id, pet_id);

CREATE TABLE services (
    service_id      integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sitter_id       integer NOT NULL REFERENCES sitters (user_id) ON DELETE CASCADE,
    type            text NOT NULL CHECK (type IN ('walking', 'boarding', 'home-care')),
    price_per_hour  numeric(10, 2) NOT NULL CHECK (price_per_hour > 0),
    description     text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX services_sitter_idx ON services (sitter_id, service_id);
CREATE INDEX services_type_price_idx ON services (type, price_per_hour);

-- A pet or service deleted later leaves past bookings in place (their id becomes NULL);
-- users are soft-deleted, so RESTRICT guards the history against a stray hard delete.
CREATE TABLE bookings (
    booking_id   integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner_id     integer NOT NULL REFERENCES users (user_id) ON DELETE RESTRICT,
    sitter_id    integer NOT NULL REFERENCES users (user_id) ON DELETE RESTRICT,
    pet_id       integer REFERENCES pets (pet_id) ON DELETE SET NULL,
    service_id   integer REFERENCES services (service_id) ON DELETE SET NULL,
    start_time   timestamptz NOT NULL,
    end_time     timestamptz NOT NULL,
    status       text NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'confirmed', 'completed', 'cancelled')),
    total_price  numeric(12, 2) NOT NULL CHECK (total_price >= 0),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT bookings_end_after_start CHECK (end_time > start_time),
    CONSTRAINT bookings_at_most_30_days CHECK (end_time - start_time <= interval '30 days'),
    -- No overlapping pending/confirmed bookings per sitter. A one-point int4range stands in for
    -- "sitter_id WITH =" so only core GiST operator classes are needed (the embedded
    -- PostgreSQL ships without btree_gist).
    CONSTRAINT bookings_sitter_no_overlap EXCLUDE USING gist (
        int4range(sitter_id, sitter_id, '[]') WITH &&,
        tstzrange(start_time, end_time, '[)') WITH &&
    ) WHERE (status IN ('pending', 'confirmed'))
);
CREATE INDEX bookings_owner_idx ON bookings (owner_id, created_at DESC, booking_id DESC);
CREATE INDEX bookings_sitter_idx ON bookings (sitter_id, created_at DESC, booking_id DESC);
CREATE INDEX bookings_owner_status_idx ON bookings (owner_id, status, created_at DESC, booking_id DESC);
CREATE INDEX bookings_sitter_status_idx ON bookings (sitter_id, status, created_at DESC, booking_id DESC);
CREATE INDEX bookings_pet_idx ON bookings (pet_id) WHERE pet_id IS NOT NULL;
CREATE INDEX bookings_service_idx ON bookings (service_id) WHERE service_id IS NOT NULL;
CREATE INDEX bookings_pending_start_idx ON bookings (start_time) WHERE status = 'pending';
CREATE INDEX bookings_created_day_idx ON bookings (created_at);

CREATE TABLE reviews (
    review_id   integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    booking_id  integer NOT NULL UNIQUE REFERENCES bookings (booking_id) ON DELETE CASCADE,
    owner_id    integer NOT NULL REFERENCES users (user_id) ON DELETE RESTRICT,
    sitter_id   integer NOT NULL REFERENCES users (user_id) ON DELETE RESTRICT,
    rating      smallint NOT NULL CHECK (rating BETWEEN 1 AND 5),
    comment     text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reviews_sitter_idx ON reviews (sitter_id, created_at DESC, review_id DESC);

CREATE TABLE payments (
    payment_id  integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    booking_id  integer NOT NULL REFERENCES bookings (booking_id) ON DELETE CASCADE,
    amount      numeric(12, 2) NOT NULL CHECK (amount >= 0),
    method      text NOT NULL CHECK (method IN ('card', 'cash')),
    status      text NOT NULL CHECK (status IN ('paid', 'refunded', 'failed')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payments_booking_idx ON payments (booking_id, payment_id);
-- A booking is paid at most once (a refunded or failed payment does not count).
CREATE UNIQUE INDEX payments_one_paid_per_booking ON payments (booking_id) WHERE status = 'paid';
CREATE INDEX payments_status_idx ON payments (status);

-- last_seq is bumped under the row lock in the transaction that stores a message,
-- which makes seq gapless and in commit order per booking.
CREATE TABLE chats (
    chat_id     integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    booking_id  integer NOT NULL UNIQUE REFERENCES bookings (booking_id) ON DELETE CASCADE,
    last_seq    bigint NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE messages (
    message_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chat_id     integer NOT NULL REFERENCES chats (chat_id) ON DELETE CASCADE,
    seq         bigint NOT NULL CHECK (seq > 0),
    sender_id   integer NOT NULL REFERENCES users (user_id) ON DELETE RESTRICT,
    content     text NOT NULL CHECK (length(content) BETWEEN 1 AND 4000),
    client_id   text CHECK (length(client_id) BETWEEN 1 AND 64),
    sent_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT messages_chat_seq_key UNIQUE (chat_id, seq),
    CONSTRAINT messages_sender_client_key UNIQUE (sender_id, client_id)
);
CREATE INDEX messages_sent_at_idx ON messages (sent_at);

CREATE TABLE chat_reads (
    chat_id     integer NOT NULL REFERENCES chats (chat_id) ON DELETE CASCADE,
    user_id     integer NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    last_read_seq bigint NOT NULL DEFAULT 0 CHECK (last_read_seq >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (chat_id, user_id)
);
