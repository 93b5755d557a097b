-- Each author's videos may take at most --video-quota-bytes together. The
-- insert of a video row checks it with swiftlet_video_fits, under a lock per
-- author held to the end of the transaction, so two uploads finishing at once
-- cannot both take the room only one of them fits in. Over the quota it
-- raises check_violation naming the constraint "video_quota". A quota of 0
-- or less means none.
CREATE FUNCTION swiftlet_video_fits(author bigint, size bigint, quota bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    used bigint;
BEGIN
    IF quota > 0 THEN
        -- The two-key form keeps these locks apart from the one-key migration lock.
        PERFORM pg_advisory_xact_lock(1447642193, hashtext(author::text));
        SELECT coalesce(sum(size_bytes), 0) INTO used FROM videos WHERE author_id = author;
        IF used + size > quota THEN
            RAISE EXCEPTION USING ERRCODE = 'check_violation', CONSTRAINT = 'video_quota',
                MESSAGE = 'the video would take its author past the storage quota';
        END IF;
    END IF;
    RETURN true;
END
$$;
