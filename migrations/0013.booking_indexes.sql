-- Two indexes fewer for every booking insert to update. The lists of an owner's or a sitter's
-- bookings count every matching row (count(*) OVER ()), so they read all of that user's rows
-- whichever index they use; bookings_owner_status_idx and bookings_sitter_status_idx find the
-- same rows by their leading column, and a top-N sort of them costs less than the two indexes
-- cost every creation. EXPLAIN ANALYZE of both lists, before and after: bench/RESULTS.md.
DROP INDEX bookings_owner_idx;
DROP INDEX bookings_sitter_idx;
