DROP FUNCTION IF EXISTS nanny_store_messages(integer[], integer[], text[], text[]);
