-- nanny_create_booking: booking creation in one statement, so in one round trip and one short
-- transaction: every check of docs/API.md in the order that makes it race-free, then the insert
-- with its chat. Called by nanny/db/bookings.py:create_booking, which turns `outcome`
-- (nanny.db.bookings.CreationOutcome) into answers.
--
-- This file is the rule's only home: nanny/db/migrate.py re-creates the function from it after
-- the migrations whenever its text changed, so a rule change is a diff of this file.
--
-- Each statement of a PL/pgSQL function takes a fresh snapshot (READ COMMITTED), so the pending
-- count after the owner's lock sees every creation committed while we waited for it. The
-- sitter's calendar lock is taken before the sitter is read, so an admin deleting the sitter
-- (nanny/db/admin.py:soft_delete_user takes the same lock before cancelling the sitter's open
-- bookings) either waits for the new booking and cancels it, or goes first and the creation then
-- sees the deleted sitter.
CREATE OR REPLACE FUNCTION nanny_create_booking(
    p_owner_id integer,
    p_sitter_id integer,
    p_pet_id integer,
    p_service_id integer,
    p_start timestamptz,
    p_end timestamptz,
    p_max_pending integer,
    p_calendar_lock integer,
    p_max_pending_per_sitter integer,
    -- one of nanny.db.bookings.CreationOutcome: created | no_owner | no_pet | no_service |
    -- wrong_sitter | too_many | too_many_for_sitter | time_off | outside_schedule
    OUT outcome text,
    -- the owner's pending bookings before this one, counted up to the cap (for too_many), or
    -- the owner's pending bookings with this sitter (for too_many_for_sitter)
    OUT pending integer,
    -- the booking as nanny/db/bookings.py reads it, when created
    OUT booking_id integer,
    OUT owner_id integer,
    OUT sitter_id integer,
    OUT pet_id integer,
    OUT service_id integer,
    OUT start_time timestamptz,
    OUT end_time timestamptz,
    OUT status text,
    OUT cancel_reason text,
    OUT total_price numeric,
    OUT created_at timestamptz,
    OUT updated_at timestamptz,
    OUT owner_name text,
    OUT owner_email text,
    OUT owner_phone text,
    OUT sitter_name text,
    OUT sitter_email text,
    OUT sitter_phone text
) LANGUAGE plpgsql
-- Every statement below has one good plan whatever the arguments (an index lookup by id, or the
-- owner's pending bookings); left to choose, PostgreSQL re-planned some on every call, a tenth
-- of a creation's database time.
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    o record;
    v record;
    b bookings;
BEGIN
    -- Serialises this owner's creations, so the pending cap below cannot be raced past, and
    -- orders them with the account's deletion (an UPDATE of this row). NO KEY UPDATE does not
    -- block rows that merely reference the user.
    SELECT u.full_name, u.email, u.phone INTO o
    FROM users u WHERE u.user_id = p_owner_id AND u.deleted_at IS NULL
    FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        outcome := 'no_owner';
        RETURN;
    END IF;
    -- Creations for one sitter take turns: two overlapping inserts checked by the exclusion
    -- constraint at the same moment would wait for each other (a deadlock PostgreSQL breaks by
    -- failing one); in turn, the second sees the first and the constraint refuses it. Taken
    -- before the sitter is read, so a deletion of the sitter is ordered with this creation.
    PERFORM pg_advisory_xact_lock(p_calendar_lock, p_sitter_id);
    -- The caller's pet, share-locked: deleting it waits for this booking.
    PERFORM 1 FROM pets p WHERE p.pet_id = p_pet_id AND p.owner_id = p_owner_id FOR SHARE;
    IF NOT FOUND THEN
        outcome := 'no_pet';
        RETURN;
    END IF;
    -- The service of an approved, live sitter, share-locked against deletion and repricing.
    SELECT sv.sitter_id, sv.price_per_hour, st.status, u.deleted_at, u.full_name, u.email,
           u.phone, sv.type, st.timezone, st.schedule_days
    INTO v
    FROM services sv
    JOIN sitters st ON st.user_id = sv.sitter_id
    JOIN users u ON u.user_id = sv.sitter_id
    WHERE sv.service_id = p_service_id
    FOR SHARE OF sv;
    IF NOT FOUND OR v.status <> 'approved' OR v.deleted_at IS NOT NULL THEN
        outcome := 'no_service';
        RETURN;
    END IF;
    IF v.sitter_id <> p_sitter_id THEN
        outcome := 'wrong_sitter';
        RETURN;
    END IF;
    -- The sitter's calendar (time off, then the weekly schedule), before the caps and the
    -- overlap rule: facts of this request, not of the owner's others. Under the sitter's lock,
    -- which nanny_add_time_off and the schedule change take too.
    PERFORM 1 FROM time_off t
    WHERE t.sitter_id = p_sitter_id
      AND tstzrange(t.start_time, t.end_time, '[)') && tstzrange(p_start, p_end, '[)');
    IF FOUND THEN
        outcome := 'time_off';
        RETURN;
    END IF;
    IF nanny_outside_schedule(p_sitter_id, v.timezone, v.schedule_days, v.type, p_start,
                              p_end) THEN
        outcome := 'outside_schedule';
        RETURN;
    END IF;
    -- Counted up to the cap only: reaching it is all that matters.
    pending := (SELECT count(*) FROM (
                    SELECT 1 FROM bookings bk
                    WHERE bk.owner_id = p_owner_id AND bk.status = 'pending'
                    LIMIT p_max_pending) AS open);
    IF pending >= p_max_pending THEN
        outcome := 'too_many';
        RETURN;
    END IF;
    -- One owner may not hold a sitter's calendar with requests: at most this many wait for the
    -- same sitter's answer. Under the sitter's lock, so concurrent requests count each other.
    pending := (SELECT count(*) FROM (
                    SELECT 1 FROM bookings bk
                    WHERE bk.owner_id = p_owner_id AND bk.sitter_id = p_sitter_id
                      AND bk.status = 'pending'
                    LIMIT p_max_pending_per_sitter) AS open);
    IF pending >= p_max_pending_per_sitter THEN
        outcome := 'too_many_for_sitter';
        RETURN;
    END IF;
    -- Priced by the database: price_per_hour x hours, rounded to cents. An overlap with the
    -- sitter's open bookings raises exclusion_violation (23P01) out of the whole statement.
    INSERT INTO bookings AS bk (owner_id, sitter_id, pet_id, service_id, start_time, end_time,
                                total_price)
    VALUES (p_owner_id, p_sitter_id, p_pet_id, p_service_id, p_start, p_end,
            round(v.price_per_hour * extract(epoch FROM (p_end - p_start)) / 3600, 2))
    RETURNING bk.* INTO b;
    INSERT INTO chats (booking_id) VALUES (b.booking_id);
    outcome := 'created';
    booking_id := b.booking_id;
    owner_id := b.owner_id;
    sitter_id := b.sitter_id;
    pet_id := b.pet_id;
    service_id := b.service_id;
    start_time := b.start_time;
    end_time := b.end_time;
    status := b.status;
    cancel_reason := b.cancel_reason;
    total_price := b.total_price;
    created_at := b.created_at;
    updated_at := b.updated_at;
    owner_name := o.full_name;
    owner_email := o.email;
    owner_phone := o.phone;
    sitter_name := v.full_name;
    sitter_email := v.email;
    sitter_phone := v.phone;
END
$$;
