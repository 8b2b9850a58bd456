-- 0004: the pipeline's own state, kept next to the data it describes. None of these tables
-- is captured (they are not in the publication), so writing them produces no events.

-- Where each consumer stands: the position of the last event it applied (a commit LSN, or a
-- heartbeat's position) and that event's commit time. Written after each applied batch;
-- read by `epipe status`, `epipe wait` and read-your-writes.
CREATE TABLE epipe_consumers (
    name         text        PRIMARY KEY,
    applied_lsn  pg_lsn      NOT NULL DEFAULT '0/0',
    committed_at timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Events a consumer could not apply, with the reason. The pipeline goes on without them.
CREATE TABLE epipe_dead_letters (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    consumer   text        NOT NULL,
    lsn        pg_lsn,
    seq        integer,
    event      jsonb,      -- the event, or NULL when the bytes were not an event at all
    raw        text,       -- the undecodable bytes (hex), when `event` is NULL
    reason     text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- Counting and listing one consumer's dead letters.
CREATE INDEX epipe_dead_letters_consumer_idx ON epipe_dead_letters (consumer, id);

-- Progress of the backfill of each captured table into a slot's stream: the key of the last
-- row emitted. A crash resumes after it.
CREATE TABLE epipe_backfills (
    slot        text        NOT NULL,
    relation    text        NOT NULL,
    position    integer     NOT NULL,  -- order in which the tables are backfilled
    last_key    jsonb,                 -- NULL until the first chunk is confirmed
    rows        bigint      NOT NULL DEFAULT 0,
    done        boolean     NOT NULL DEFAULT false,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    PRIMARY KEY (slot, relation)
);
