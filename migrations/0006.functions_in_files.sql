-- From here on the rule functions are not the migrations' business: each lives in one file of
-- migrations/functions/ (nanny_create_booking.sql, nanny_store_messages.sql, the versions of
-- migrations 0005 and 0004 unchanged), and nanny/db/migrate.py re-creates it from there after
-- every migrate whose file changed. The migrations' versions are dropped here; the re-creation
-- right after this migration puts them back from their files.
DROP FUNCTION IF EXISTS nanny_create_booking(
    integer, integer, integer, integer, timestamptz, timestamptz, integer, integer
);
DROP FUNCTION IF EXISTS nanny_store_messages(integer[], integer[], text[], text[]);
