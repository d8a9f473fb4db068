DROP FUNCTION nanny_create_booking(
    integer, integer, integer, integer, timestamptz, timestamptz, integer, integer
);
