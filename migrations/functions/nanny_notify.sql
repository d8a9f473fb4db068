-- The notifications an event causes, written in the event's own transaction (the outbox of
-- migration 0010): who is told what when a booking is requested or changes status, a sitter is
-- approved or rejected, or a review is written. The triggers are created here too, beside what
-- they run, so "when" and "what" are one diff; re-running this file replaces both in place.
--
-- Recipients: a request tells its sitter; a confirmation or completion (the sitter's doing)
-- tells the owner; a cancellation tells the other participant, and both when neither of them
-- did it (expired, a user deleted, or any other reason the system gives); an approval or
-- rejection tells the sitter; a review tells its sitter. No pg_notify: a notifying commit takes
-- a database-wide lock through its WAL flush, which serialised booking creation (75 % of the
-- throughput without notifications); every process polls the table instead (nanny/notify/).
--
-- With the session setting nanny.notifications = 'off' (NOTIFICATIONS_ENABLED=false, for the
-- benchmark's comparison) nothing is written.
CREATE OR REPLACE FUNCTION nanny_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_kind text;
    v_users integer[];
    v_user integer;
    v_booking integer;
BEGIN
    IF current_setting('nanny.notifications', true) = 'off' THEN
        RETURN NULL;
    END IF;
    IF TG_TABLE_NAME = 'bookings' THEN
        v_booking := NEW.booking_id;
        IF TG_OP = 'INSERT' THEN
            IF NEW.status <> 'pending' THEN  -- a booking made in a later state (seed data)
                RETURN NULL;
            END IF;
            v_kind := 'booking_requested';
            v_users := ARRAY[NEW.sitter_id];
        ELSIF NEW.status = 'confirmed' THEN
            v_kind := 'booking_confirmed';
            v_users := ARRAY[NEW.owner_id];
        ELSIF NEW.status = 'completed' THEN
            v_kind := 'booking_completed';
            v_users := ARRAY[NEW.owner_id];
        ELSIF NEW.status = 'cancelled' THEN
            v_kind := CASE WHEN NEW.cancel_reason = 'expired'
                           THEN 'booking_expired' ELSE 'booking_cancelled' END;
            v_users := CASE NEW.cancel_reason
                           WHEN 'owner' THEN ARRAY[NEW.sitter_id]
                           WHEN 'sitter' THEN ARRAY[NEW.owner_id]
                           -- declined by the sitter's time off: the sitter knows
                           WHEN 'sitter_unavailable' THEN ARRAY[NEW.owner_id]
                           ELSE ARRAY[NEW.owner_id, NEW.sitter_id] END;
        ELSE
            RETURN NULL;
        END IF;
    ELSIF TG_TABLE_NAME = 'sitters' THEN
        IF NEW.status NOT IN ('approved', 'rejected') THEN
            RETURN NULL;
        END IF;
        v_kind := 'sitter_' || NEW.status;
        v_users := ARRAY[NEW.user_id];
    ELSIF TG_TABLE_NAME = 'reviews' THEN
        v_kind := 'review_received';
        v_users := ARRAY[NEW.sitter_id];
        v_booking := NEW.booking_id;
    ELSE
        RETURN NULL;
    END IF;
    FOREACH v_user IN ARRAY v_users LOOP
        INSERT INTO notifications (user_id, kind, booking_id) VALUES (v_user, v_kind, v_booking);
    END LOOP;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS bookings_notify_insert ON bookings;
CREATE TRIGGER bookings_notify_insert AFTER INSERT ON bookings
    FOR EACH ROW EXECUTE FUNCTION nanny_notify();
DROP TRIGGER IF EXISTS bookings_notify_status ON bookings;
CREATE TRIGGER bookings_notify_status AFTER UPDATE OF status ON bookings
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION nanny_notify();
DROP TRIGGER IF EXISTS sitters_notify_status ON sitters;
CREATE TRIGGER sitters_notify_status AFTER UPDATE OF status ON sitters
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION nanny_notify();
DROP TRIGGER IF EXISTS reviews_notify_insert ON reviews;
CREATE TRIGGER reviews_notify_insert AFTER INSERT ON reviews
    FOR EACH ROW EXECUTE FUNCTION nanny_notify();
