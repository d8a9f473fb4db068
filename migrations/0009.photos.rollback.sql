-- Messages that were only photos get a word, as the old rule wants some text.
UPDATE messages SET content = '(photo)' WHERE content = '';
ALTER TABLE messages DROP CONSTRAINT messages_content_check;
ALTER TABLE messages ADD CONSTRAINT messages_content_check
    CHECK (length(content) BETWEEN 1 AND 4000);
DROP TABLE images;
DROP FUNCTION nanny_count_media_refs();
DROP TABLE media_files;
