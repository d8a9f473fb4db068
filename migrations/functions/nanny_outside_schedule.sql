-- nanny_outside_schedule: true when a booking of a service of type p_type for [p_start, p_end)
-- does not fit the sitter's weekly schedule (docs/API.md, "Availability"). p_zone and p_days
-- are the sitter's timezone and schedule_days (migrations/0008.calendar.sql).
--
-- No weekly schedule (p_days = 0): it always fits. A walk must lie within one interval of its
-- local weekday (so within one local day; an interval ending at 24:00 takes a walk ending at
-- midnight). Boarding and home care need every local day they touch to have an interval; their
-- hours are not checked.
--
-- PL/pgSQL rather than SQL: an SQL function that cannot be inlined (this one has a subquery) is
-- parsed and planned again in every transaction that calls it, a quarter of a creation's
-- database time; PL/pgSQL keeps its plan for the session.
--
-- Used by nanny_create_booking (under the sitter's lock) and by the schedule change, which lists
-- the bookings a new schedule leaves outside. Search writes the same rule out (cheaper per row)
-- (nanny/db/services.py); tests/test_availability.py checks the two agree.
CREATE OR REPLACE FUNCTION nanny_outside_schedule(
    p_sitter_id integer,
    p_zone text,
    p_days integer,
    p_type text,
    p_start timestamptz,
    p_end timestamptz
) RETURNS boolean LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN p_days <> 0 AND CASE
        WHEN p_type = 'walking' THEN NOT EXISTS (
            SELECT 1 FROM sitter_schedule w
            WHERE w.sitter_id = p_sitter_id
              AND w.weekday = extract(isodow FROM (p_start AT TIME ZONE p_zone))::integer - 1
              AND w.start_minute * 60 <= extract(epoch FROM (p_start AT TIME ZONE p_zone)
                                                  - (p_start AT TIME ZONE p_zone)::date)
              AND w.end_minute * 60 >= extract(epoch FROM (p_end AT TIME ZONE p_zone)
                                                - (p_start AT TIME ZONE p_zone)::date))
        ELSE (nanny_days_mask(p_start, p_end, p_zone) & ~p_days) <> 0
    END;
END
$$;
