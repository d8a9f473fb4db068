-- nanny_store_messages: chat messages stored in batches. One call, so one round trip and one
-- commit, for every message a process received while its previous batches were being stored
-- (group commit in the application; see nanny/chat/batch.py). Each message goes through the same
-- steps as a single send (nanny/db/chat.py:store_message): a client_id the sender used before
-- returns the original; otherwise its photos are claimed, the chat's next seq is taken under the
-- chat row's lock, only for a live participant, and the message is stored with it.
--
-- Photos: p_attachment_ords[j] names the message (its position in the other arrays, from 1)
-- that claims image p_attachment_ids[j], in the order sent. Every one must be an image of the
-- message's booking, uploaded by its sender and claimed by no message yet; they are locked
-- before anything is written, so of two messages claiming one image (in one batch or two) only
-- the first gets it, and the other is refused whole. A message has text, photos, or both.
--
-- Messages are taken in booking order (then arrival order), so two batches lock the chat rows
-- they share in the same order and cannot deadlock on them. A message that cannot be stored
-- comes back with `created` NULL and `refused` saying why: 'not_participant' (no chat, not a
-- participant, deleted sender), 'attachments' or 'empty'.
--
-- This file is the rule's only home: nanny/db/migrate.py re-creates the function from it after
-- the migrations whenever its text changed, so a rule change is a diff of this file.
CREATE OR REPLACE FUNCTION nanny_store_messages(
    p_booking_ids integer[],
    p_sender_ids integer[],
    p_contents text[],
    p_client_ids text[],
    p_attachment_ords integer[],
    p_attachment_ids integer[]
) RETURNS TABLE (
    ord integer,            -- the message's position in the arrays, from 1
    created boolean,        -- true: stored now; false: the original of a repeated client_id
    refused text,           -- why it was not stored, when created is NULL
    message_id bigint,
    booking_id integer,
    chat_id integer,
    seq bigint,
    sender_id integer,
    content text,
    client_id text,
    sent_at timestamptz,
    attachments jsonb       -- [[image_id, width, height], ...] in the message's order
) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    i record;
    e record;
    v_chat integer;
    v_seq bigint;
    v_ids integer[];
    v_locked integer;
    v_message bigint;
    v_sent timestamptz;
BEGIN
    FOR i IN
        SELECT a.ord::integer AS ord, a.b, a.s, a.c, a.k
        FROM unnest(p_booking_ids, p_sender_ids, p_contents, p_client_ids)
             WITH ORDINALITY AS a(b, s, c, k, ord)
        ORDER BY a.b, a.ord
    LOOP
        IF i.k IS NOT NULL THEN
            SELECT m.message_id, ch.booking_id, m.chat_id, m.seq, m.content, m.sent_at INTO e
            FROM messages m JOIN chats ch ON ch.chat_id = m.chat_id
            WHERE m.sender_id = i.s AND m.client_id = i.k;
            IF FOUND THEN
                RETURN QUERY SELECT i.ord, false, NULL::text, e.message_id, e.booking_id,
                    e.chat_id, e.seq, i.s, e.content, i.k, e.sent_at,
                    (SELECT coalesce(jsonb_agg(jsonb_build_array(im.image_id, im.width, im.height)
                                               ORDER BY im.position), '[]'::jsonb)
                     FROM images im WHERE im.message_id = e.message_id);
                CONTINUE;
            END IF;
        END IF;
        v_ids := ARRAY(
            SELECT a.id FROM unnest(p_attachment_ords, p_attachment_ids) WITH ORDINALITY
                AS a(o, id, n)
            WHERE a.o = i.ord ORDER BY a.n
        );
        IF cardinality(v_ids) > 0 THEN
            SELECT count(*) INTO v_locked FROM (
                SELECT 1 FROM images im
                WHERE im.image_id = ANY (v_ids) AND im.booking_id = i.b
                  AND im.uploader_id = i.s AND im.message_id IS NULL
                FOR UPDATE
            ) claimable;
            IF v_locked <> cardinality(v_ids) THEN
                RETURN QUERY SELECT i.ord, NULL::boolean, 'attachments'::text, NULL::bigint, i.b,
                    NULL::integer, NULL::bigint, i.s, i.c, i.k, NULL::timestamptz, NULL::jsonb;
                CONTINUE;
            END IF;
        ELSIF i.c = '' THEN
            RETURN QUERY SELECT i.ord, NULL::boolean, 'empty'::text, NULL::bigint, i.b,
                NULL::integer, NULL::bigint, i.s, i.c, i.k, NULL::timestamptz, NULL::jsonb;
            CONTINUE;
        END IF;
        UPDATE chats ch SET last_seq = ch.last_seq + 1
        FROM bookings bk
        WHERE ch.booking_id = i.b AND bk.booking_id = ch.booking_id
          AND i.s IN (bk.owner_id, bk.sitter_id)
          -- a deleted account's socket on another process cannot post any more
          AND EXISTS (SELECT 1 FROM users u WHERE u.user_id = i.s AND u.deleted_at IS NULL)
        RETURNING ch.chat_id, ch.last_seq INTO v_chat, v_seq;
        IF NOT FOUND THEN
            RETURN QUERY SELECT i.ord, NULL::boolean, 'not_participant'::text, NULL::bigint, i.b,
                NULL::integer, NULL::bigint, i.s, i.c, i.k, NULL::timestamptz, NULL::jsonb;
            CONTINUE;
        END IF;
        INSERT INTO messages AS m (chat_id, seq, sender_id, content, client_id)
        VALUES (v_chat, v_seq, i.s, i.c, i.k)
        RETURNING m.message_id, m.sent_at INTO v_message, v_sent;
        IF cardinality(v_ids) > 0 THEN
            UPDATE images im SET message_id = v_message, position = a.n
            FROM unnest(v_ids) WITH ORDINALITY AS a(id, n)
            WHERE im.image_id = a.id;
        END IF;
        RETURN QUERY SELECT i.ord, true, NULL::text, v_message, i.b, v_chat, v_seq, i.s, i.c,
            i.k, v_sent,
            CASE WHEN cardinality(v_ids) = 0 THEN '[]'::jsonb ELSE
                (SELECT jsonb_agg(jsonb_build_array(im.image_id, im.width, im.height)
                                  ORDER BY im.position)
                 FROM images im WHERE im.message_id = v_message)
            END;
    END LOOP;
END
$$;
