-- 0014: the lineage graph's position per part of the stream. Kafka orders events within one
-- partition only, and partitions interleave: one position for the whole stream would skip
-- events of a lagging partition after a faster one moved it on. Each Kafka partition's
-- position is kept here, written in the transaction that changes the graph; the one of
-- epipe_prov_state stays the position of the in-process stream and of the last rebuild,
-- below which every event is in the graph whatever its part.
CREATE TABLE epipe_prov_parts (
    part text    PRIMARY KEY,  -- 'topic:partition'
    lsn  bigint  NOT NULL,
    seq  integer NOT NULL
);
