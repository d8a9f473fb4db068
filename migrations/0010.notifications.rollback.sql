DROP TRIGGER IF EXISTS bookings_notify_insert ON bookings;
DROP TRIGGER IF EXISTS bookings_notify_status ON bookings;
DROP TRIGGER IF EXISTS sitters_notify_status ON sitters;
DROP TRIGGER IF EXISTS reviews_notify_insert ON reviews;
DROP FUNCTION IF EXISTS nanny_notify();
DROP TABLE chat_digests;
DROP TABLE notifications;
ALTER TABLE users DROP COLUMN email_bookings, DROP COLUMN email_messages, DROP COLUMN email_reviews;
