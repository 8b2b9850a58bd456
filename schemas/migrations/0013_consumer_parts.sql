-- 0013: a consumer group's position, exact. Each member records where it is on each part of
-- the stream it holds (a Kafka partition; the in-process bus has one part, ''); the group's
-- applied position (epipe_consumers) is the least over every part the group reads, so a
-- fast member never hides a slow one from `epipe wait` and read-your-writes.
CREATE TABLE epipe_consumer_parts (
    consumer     text        NOT NULL,
    part         text        NOT NULL,  -- 'topic:partition'; '' for the in-process bus
    applied_lsn  pg_lsn      NOT NULL,
    committed_at timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, part)
);
