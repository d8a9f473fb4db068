-- A sitter's reviews page is the one public list read that reaches the database at a hundred
-- rows a page whenever the public-read cache misses; decoding nine columns a row, a dict per
-- row and orjson were most of its server time (bench/RESULTS.md). Each review now carries its
-- API JSON (doc), written in the transaction of every change it shows: the review's insert or
-- update (reviews_doc), and its author's name changing, by a rename or by the account's
-- deletion ('Deleted user', users_review_doc). The page is the docs joined by commas, sent as
-- the database's bytes (nanny/db/reviews.py); single reviews are still encoded in the server
-- (nanny/http/reviews.py), and tests/test_reviews.py holds the two to the same answer.
--
-- The text is what nanny/encoding.py writes: compact, keys in the API's order, times in UTC
-- with Z and microseconds only when there are any (orjson's OPT_UTC_Z), strings escaped by
-- to_json.
CREATE FUNCTION nanny_json_time(p_time timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT '"' || to_char(p_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
        || CASE WHEN date_trunc('second', p_time) = p_time THEN ''
                ELSE to_char(p_time AT TIME ZONE 'UTC', '.US') END
        || 'Z"'
$$;

CREATE FUNCTION nanny_review_doc(r reviews) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT format(
        '{"review_id":%s,"booking_id":%s,"owner_id":%s,"sitter_id":%s,"owner_name":%s,'
        '"rating":%s,"comment":%s,"created_at":%s,"updated_at":%s}',
        r.review_id, r.booking_id, r.owner_id, r.sitter_id, to_json(u.full_name), r.rating,
        to_json(r.comment), nanny_json_time(r.created_at), nanny_json_time(r.updated_at))
    FROM users u WHERE u.user_id = r.owner_id
$$;

ALTER TABLE reviews ADD COLUMN doc text;

CREATE FUNCTION nanny_review_doc_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'reviews' THEN
        NEW.doc := nanny_review_doc(NEW);
        RETURN NEW;
    END IF;
    -- The author's name changed: reviews_doc writes each of their reviews' docs anew.
    UPDATE reviews SET doc = NULL WHERE owner_id = NEW.user_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER reviews_doc BEFORE INSERT OR UPDATE ON reviews
    FOR EACH ROW EXECUTE FUNCTION nanny_review_doc_changed();
CREATE TRIGGER users_review_doc AFTER UPDATE OF full_name ON users
    FOR EACH ROW WHEN (OLD.full_name IS DISTINCT FROM NEW.full_name)
    EXECUTE FUNCTION nanny_review_doc_changed();

UPDATE reviews SET doc = NULL;  -- reviews_doc writes them
ALTER TABLE reviews ALTER COLUMN doc SET NOT NULL;
