DROP FUNCTION nanny_store_messages(integer[], integer[], text[], text[]);
