-- 0010: the Hive consumer's location catalog, and why a consumer is waiting.
--
-- Each metastore object whose location is in the file system is bound to the inode its
-- location named when the consumer first saw it: a move of that inode (or of a directory
-- above it) rewrites the location, its removal drops the object. Bindings live here, not in
-- memory, so that a consumer restarted after its directories went (while it was down or
-- behind) still knows what they held.
CREATE TABLE epipe_hive_objects (
    key      text   PRIMARY KEY,  -- db | db.table | db.table/k=v
    kind     text   NOT NULL CHECK (kind IN ('database', 'table', 'partition')),
    path     text   NOT NULL,     -- the epipe path its location names
    inode_id bigint NOT NULL,     -- the inode that path named when it was bound
    problem  text,                -- why it differs from what the namespace implies, if it does
    refused  text                 -- a location the metastore refused for it: not asked again
);
CREATE INDEX epipe_hive_objects_inode ON epipe_hive_objects (inode_id);

-- A consumer waiting for its view to come back (a metastore down): `epipe status` says why.
ALTER TABLE epipe_consumers ADD COLUMN problem text;
