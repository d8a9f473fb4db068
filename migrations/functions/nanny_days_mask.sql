-- nanny_days_mask: the weekdays (bit w for weekday w, Monday = 0) of every calendar day that
-- [p_start, p_end) touches in time zone p_zone; a span of seven days or more touches them all,
-- and a shorter one running past Sunday wraps round to Monday. A booking that ends exactly at
-- local midnight does not touch the day that begins then.
--
-- One expression without FROM, so PostgreSQL inlines it into the statements that call it (the
-- booking rule, nanny_outside_schedule, and the search by dates in nanny/db/services.py).
CREATE OR REPLACE FUNCTION nanny_days_mask(p_start timestamptz, p_end timestamptz, p_zone text)
RETURNS integer LANGUAGE sql STABLE AS $$
    SELECT (
        (((1 << least(((p_end AT TIME ZONE p_zone) - interval '1 microsecond')::date
                      - (p_start AT TIME ZONE p_zone)::date + 1, 7)) - 1)
         << (extract(isodow FROM (p_start AT TIME ZONE p_zone))::integer - 1))
        | ((((1 << least(((p_end AT TIME ZONE p_zone) - interval '1 microsecond')::date
                         - (p_start AT TIME ZONE p_zone)::date + 1, 7)) - 1)
            << (extract(isodow FROM (p_start AT TIME ZONE p_zone))::integer - 1)) >> 7)
    ) & 127
$$;
