-- A write that changes what an author's followers see (a video, a profile
-- edit) invalidates their cached feeds a page of followers at a time, so its
-- work per round-trip is bounded however many followers there are. The pages
-- walk follower ids in order, which this index serves (and the old one on
-- followee alone becomes its prefix).
CREATE INDEX follows_followee_follower ON follows (followee_id, follower_id);
DROP INDEX follows_followee;
