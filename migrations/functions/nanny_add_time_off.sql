-- nanny_add_time_off: a sitter takes [p_start, p_end) off, in one statement. Under the sitter's
-- calendar lock, the one nanny_create_booking takes, so a booking and a time-off entry for the
-- same hours take turns and only the first wins: the time off is refused when it overlaps a
-- confirmed booking (clash_booking_id names the first), and otherwise declines the pending
-- requests it overlaps (cancelled, reason 'sitter_unavailable'; their ids in `cancelled`).
-- Called by nanny/db/availability.py:add_time_off, which refunds and announces the declined.
CREATE OR REPLACE FUNCTION nanny_add_time_off(
    p_sitter_id integer,
    p_start timestamptz,
    p_end timestamptz,
    p_calendar_lock integer,
    -- 'created' | 'clash' (a confirmed booking overlaps)
    OUT outcome text,
    OUT time_off_id integer,
    OUT clash_booking_id integer,
    OUT cancelled integer[]
) LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    PERFORM pg_advisory_xact_lock(p_calendar_lock, p_sitter_id);
    -- The open bookings it overlaps, locked before they are read: a confirmation under way
    -- commits first (and the check below sees it), one that comes later waits and then finds
    -- its request declined. No new one can appear: creations wait for the lock above.
    PERFORM 1 FROM bookings b
    WHERE b.sitter_id = p_sitter_id AND b.status IN ('pending', 'confirmed')
      AND tstzrange(b.start_time, b.end_time, '[)') && tstzrange(p_start, p_end, '[)')
    FOR UPDATE;
    SELECT b.booking_id INTO clash_booking_id
    FROM bookings b
    WHERE b.sitter_id = p_sitter_id AND b.status = 'confirmed'
      AND tstzrange(b.start_time, b.end_time, '[)') && tstzrange(p_start, p_end, '[)')
    ORDER BY b.start_time LIMIT 1;
    IF FOUND THEN
        outcome := 'clash';
        RETURN;
    END IF;
    INSERT INTO time_off AS t (sitter_id, start_time, end_time)
    VALUES (p_sitter_id, p_start, p_end)
    RETURNING t.time_off_id INTO time_off_id;
    WITH declined AS (
        UPDATE bookings b
        SET status = 'cancelled', cancel_reason = 'sitter_unavailable', updated_at = now()
        WHERE b.sitter_id = p_sitter_id AND b.status = 'pending'
          AND tstzrange(b.start_time, b.end_time, '[)') && tstzrange(p_start, p_end, '[)')
        RETURNING b.booking_id
    )
    SELECT coalesce(array_agg(d.booking_id ORDER BY d.booking_id), '{}') INTO cancelled
    FROM declined d;
    outcome := 'created';
END
$$;
