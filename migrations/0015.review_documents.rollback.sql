DROP TRIGGER users_review_doc ON users;
DROP TRIGGER reviews_doc ON reviews;
DROP FUNCTION nanny_review_doc_changed();
ALTER TABLE reviews DROP COLUMN doc;
DROP FUNCTION nanny_review_doc(reviews);
DROP FUNCTION nanny_json_time(timestamptz);
