-- 0006: bearer tokens of the REST API, and the pipeline's event counters for /metrics.

-- Tokens are 32 random bytes; only their SHA-256 is stored (a high-entropy secret needs no
-- slow hash), so a leaked table leaks no usable token.
CREATE TABLE api_tokens (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      integer     NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_sha256 bytea       NOT NULL UNIQUE,  -- the lookup of every API request
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);

-- Events in and out of each stage of the pipeline (the tailer: 'source'; each consumer by
-- name), written by the pipeline process, read by whoever serves /metrics. Not captured.
CREATE TABLE epipe_stage_counters (
    stage       text        PRIMARY KEY,
    events_in   bigint      NOT NULL DEFAULT 0,
    events_out  bigint      NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
