-- 0011: the lineage graph the provenance consumer keeps from the operation log (prov_ops).
--
-- Nodes are apps and file-system entries keyed by inode id (a move keeps lineage); edges
-- are aggregated per (app, role, inode): 'input' = the app read it, 'output' = the app
-- created, wrote, made or annotated it. Queries read these tables, never the raw log, so
-- `epipe prov prune` can trim the log: what it removes is first added to the `pruned` rows
-- (the graph is then still equal to a rebuild from pruned rows plus the log).
CREATE TABLE epipe_prov_apps (
    app_id   text        PRIMARY KEY,
    first_at timestamptz NOT NULL,
    last_at  timestamptz NOT NULL,
    ops      bigint      NOT NULL,
    users    integer[]   NOT NULL   -- distinct user ids, sorted
);

CREATE TABLE epipe_prov_edges (
    app_id   text        NOT NULL,
    role     text        NOT NULL CHECK (role IN ('input', 'output')),
    inode_id bigint      NOT NULL,
    first_at timestamptz NOT NULL,
    last_at  timestamptz NOT NULL,
    count    bigint      NOT NULL,
    ops      text[]      NOT NULL,  -- the operations seen, sorted
    PRIMARY KEY (app_id, role, inode_id)
);
-- Lineage walks from a file to the apps that read or wrote it.
CREATE INDEX epipe_prov_edges_inode ON epipe_prov_edges (inode_id, role);

CREATE TABLE epipe_prov_nodes (
    inode_id   bigint      PRIMARY KEY,
    path       text        NOT NULL,  -- kept current through moves; the last one once deleted
    ancestors  bigint[]    NOT NULL,  -- inode ids from the root down to the parent
    kind       text        NOT NULL CHECK (kind IN ('file', 'dir')),
    artifact   text,                  -- model | dataset | notebook | image | …
    deleted_at timestamptz
);
-- A directory move rewrites the paths of the nodes below it: found by ancestor.
CREATE INDEX epipe_prov_nodes_ancestors ON epipe_prov_nodes USING gin (ancestors);

-- The aggregates of log rows `epipe prov prune` removed (same shape as the graph's).
CREATE TABLE epipe_prov_pruned (
    app_id   text        NOT NULL,
    role     text        NOT NULL,  -- 'input' | 'output' | '' (the app's own row)
    inode_id bigint      NOT NULL,  -- 0 for the app's own row
    first_at timestamptz NOT NULL,
    last_at  timestamptz NOT NULL,
    count    bigint      NOT NULL,
    ops      text[]      NOT NULL,
    users    integer[]   NOT NULL,
    PRIMARY KEY (app_id, role, inode_id)
);

-- The position the graph holds, written in the transaction that changes it: a batch
-- replayed after a crash is recognised and not counted twice.
CREATE TABLE epipe_prov_state (
    one      boolean PRIMARY KEY DEFAULT true CHECK (one),
    lsn      bigint  NOT NULL,
    seq      integer NOT NULL,
    seen     text,               -- the snapshot of the last rebuild (xmin:xmax:xip,...)
    pruned_before timestamptz    -- operations before this time are no longer in the log
);
