-- 0009: whether a backfill resynchronises its consumers (begins with a truncation).
--
-- Decided when the backfill starts: consumers that had applied changes by then may hold
-- rows deleted while nothing streamed, so they must drop everything first. Decided later
-- (at the first chunk), a consumer that had only applied what the new slot streamed in the
-- meantime made a first backfill look like a resynchronisation.

ALTER TABLE epipe_backfills ADD COLUMN resync boolean NOT NULL DEFAULT false;
