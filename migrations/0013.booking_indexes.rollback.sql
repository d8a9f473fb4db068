CREATE INDEX bookings_owner_idx ON bookings (owner_id, created_at DESC, booking_id DESC);
CREATE INDEX bookings_sitter_idx ON bookings (sitter_id, created_at DESC, booking_id DESC);
