-- 0012: what recording provenance costs (measured by `epipe bench prov`, docs/provenance.md).
--
-- 1. A switch. `fs_record` writes the operation's row of the log (prov_ops) unless the
--    session setting `epipe.provenance` is 'off' (epipe sets it on every connection it opens,
--    from EPIPE_PROVENANCE; unset or any other value: recorded).
-- 2. A read commits without waiting for its WAL flush. Without provenance a read writes
--    nothing; with it, its row made it a write transaction that waited for a WAL flush
--    (fsync) at commit: two thirds of the file system's throughput under `load mix`. So a
--    transaction whose only change is a read's row commits with synchronous_commit = off
--    for itself: its row is in the log as before and reaches the change stream once the WAL
--    writer has flushed it (within wal_writer_delay, 200 ms, or at the next synchronous
--    commit of any session). A server crash can lose such rows written in the last moments,
--    never a row of a change, and never a read older than a change that survived (the WAL is
--    one sequence: flushing a commit flushes every record before it). A change made later
--    in the same transaction puts the session's own setting back before it commits.
-- 3. Lineage starts from a path: an index on the graph's node paths (a hash index: a path
--    has no length limit, a B-tree entry has).
CREATE OR REPLACE FUNCTION fs_record(actor integer, app text, op text, node inodes,
                                     detail jsonb DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('epipe.provenance', true) = 'off' THEN
        RETURN;
    END IF;
    IF op = 'read' THEN
        IF pg_current_xact_id_if_assigned() IS NULL
           AND current_setting('synchronous_commit') <> 'off' THEN
            PERFORM set_config('epipe.read_commit', current_setting('synchronous_commit'), true);
            PERFORM set_config('synchronous_commit', 'off', true);
        END IF;
    ELSIF coalesce(current_setting('epipe.read_commit', true), '') <> '' THEN
        PERFORM set_config('synchronous_commit', current_setting('epipe.read_commit'), true);
        PERFORM set_config('epipe.read_commit', '', true);
    END IF;
    INSERT INTO prov_ops (inode_id, parent_id, user_id, op, app_id, name, detail)
    VALUES (node.id, node.parent_id, actor, op, app, node.name, detail);
END $$;

CREATE INDEX epipe_prov_nodes_path ON epipe_prov_nodes USING hash (path);
