-- nanny_store_messages: chat messages stored in batches. One call, so one round trip and one
-- commit, for every message a process received while its previous batches were being stored
-- (group commit in the application; see nanny/ws/batch.py). Each message goes through the same steps as a
-- single send (nanny/db/chat.py:store_message): a client_id the sender used before returns the
-- original; otherwise the chat's next seq is taken under the chat row's lock, only for a live
-- participant, and the message is stored with it.
--
-- Messages are taken in booking order (then arrival order), so two batches lock the chat rows
-- they share in the same order and cannot deadlock on them. A message that cannot be stored
-- (no chat, not a participant, deleted sender) comes back with `created` NULL.
--
-- This file is the rule's only home: nanny/db/migrate.py re-creates the function from it after
-- the migrations whenever its text changed, so a rule change is a diff of this file.
CREATE OR REPLACE FUNCTION nanny_store_messages(
    p_booking_ids integer[],
    p_sender_ids integer[],
    p_contents text[],
    p_client_ids text[]
) RETURNS TABLE (
    ord integer,            -- the message's position in the arrays, from 1
    created boolean,        -- true: stored now; false: the original of a repeated client_id
    message_id bigint,
    booking_id integer,
    chat_id integer,
    seq bigint,
    sender_id integer,
    content text,
    client_id text,
    sent_at timestamptz
) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    i record;
    e record;
    v_chat integer;
    v_seq bigint;
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
                RETURN QUERY SELECT i.ord, false, e.message_id, e.booking_id, e.chat_id, e.seq,
                    i.s, e.content, i.k, e.sent_at;
                CONTINUE;
            END IF;
        END IF;
        UPDATE chats ch SET last_seq = ch.last_seq + 1
        FROM bookings bk
        WHERE ch.booking_id = i.b AND bk.booking_id = ch.booking_id
          AND i.s IN (bk.owner_id, bk.sitter_id)
          -- a deleted account's socket on another process cannot post any more
          AND EXISTS (SELECT 1 FROM users u WHERE u.user_id = i.s AND u.deleted_at IS NULL)
        RETURNING ch.chat_id, ch.last_seq INTO v_chat, v_seq;
        IF NOT FOUND THEN
            RETURN QUERY SELECT i.ord, NULL::boolean, NULL::bigint, i.b, NULL::integer,
                NULL::bigint, i.s, i.c, i.k, NULL::timestamptz;
            CONTINUE;
        END IF;
        RETURN QUERY
            INSERT INTO messages AS m (chat_id, seq, sender_id, content, client_id)
            VALUES (v_chat, v_seq, i.s, i.c, i.k)
            RETURNING i.ord, true, m.message_id, i.b, m.chat_id, m.seq, m.sender_id, m.content,
                m.client_id, m.sent_at;
    END LOOP;
END
$$;
