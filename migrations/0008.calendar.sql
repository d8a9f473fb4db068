-- Availability calendar: a sitter's time zone, weekly schedule and time off.
--
-- `schedule_days` mirrors sitter_schedule: bit w (Monday = 0) is set when weekday w has at least
-- one interval; 0 means no weekly schedule (available every day, all day). It is written in the
-- same transaction as the intervals (nanny/db/availability.py), so search and the booking rule
-- test whole days without reading the intervals.
ALTER TABLE sitters
    ADD COLUMN timezone text NOT NULL DEFAULT 'Asia/Almaty'
        CHECK (length(timezone) BETWEEN 1 AND 64),
    ADD COLUMN schedule_days smallint NOT NULL DEFAULT 0
        CHECK (schedule_days BETWEEN 0 AND 127);

-- One interval of the weekly schedule, in minutes of the sitter's local day ([start, end)).
CREATE TABLE sitter_schedule (
    sitter_id     integer NOT NULL REFERENCES sitters (user_id) ON DELETE CASCADE,
    weekday       smallint NOT NULL CHECK (weekday BETWEEN 0 AND 6),
    start_minute  smallint NOT NULL CHECK (start_minute BETWEEN 0 AND 1439),
    end_minute    smallint NOT NULL CHECK (end_minute BETWEEN 1 AND 1440),
    CHECK (start_minute < end_minute),
    PRIMARY KEY (sitter_id, weekday, start_minute)
);

-- [start_time, end_time): nothing of the sitter can be booked then.
CREATE TABLE time_off (
    time_off_id  integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sitter_id    integer NOT NULL REFERENCES sitters (user_id) ON DELETE CASCADE,
    start_time   timestamptz NOT NULL,
    end_time     timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (start_time < end_time)
);
CREATE INDEX time_off_sitter_idx ON time_off (sitter_id, end_time);
-- Search asks which sitters are off during a window, whoever they are.
CREATE INDEX time_off_range_idx ON time_off USING gist (tstzrange(start_time, end_time, '[)'));

-- 'sitter_unavailable': pending requests declined when their sitter took that time off.
ALTER TABLE bookings DROP CONSTRAINT bookings_cancel_reason_known;
ALTER TABLE bookings ADD CONSTRAINT bookings_cancel_reason_known
    CHECK (cancel_reason IN ('owner', 'sitter', 'expired', 'user_deleted', 'sitter_unavailable'));
