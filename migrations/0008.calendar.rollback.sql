UPDATE bookings SET cancel_reason = 'sitter' WHERE cancel_reason = 'sitter_unavailable';
ALTER TABLE bookings DROP CONSTRAINT bookings_cancel_reason_known;
ALTER TABLE bookings ADD CONSTRAINT bookings_cancel_reason_known
    CHECK (cancel_reason IN ('owner', 'sitter', 'expired', 'user_deleted'));
DROP TABLE time_off;
DROP TABLE sitter_schedule;
ALTER TABLE sitters DROP COLUMN schedule_days, DROP COLUMN timezone;
