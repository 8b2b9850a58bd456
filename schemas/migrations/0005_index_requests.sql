-- 0005: requests to the index consumer (a rebuild asked for by `epipe reindex` while the
-- pipeline runs), with their progress. Not captured.
CREATE TABLE epipe_index_requests (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         text        NOT NULL DEFAULT 'reindex' CHECK (kind IN ('reindex')),
    requested_at timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz,
    done         bigint      NOT NULL DEFAULT 0,
    total        bigint,
    error        text
);
-- The consumer looks for the oldest unfinished request between batches.
CREATE INDEX epipe_index_requests_open_idx ON epipe_index_requests (id) WHERE finished_at IS NULL;
