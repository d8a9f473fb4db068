-- Drop every version of the functions the files of migrations/functions/ made; rolling back
-- further, migration 0005's rollback re-creates migration 0003's nanny_create_booking.
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN
        SELECT oid::regprocedure FROM pg_proc
        WHERE proname IN ('nanny_create_booking', 'nanny_store_messages')
            AND pg_function_is_visible(oid)
    LOOP
        EXECUTE 'DROP FUNCTION ' || f::text;
    END LOOP;
END
$$;
