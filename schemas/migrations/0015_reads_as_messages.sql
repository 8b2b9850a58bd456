-- 0015: a read is recorded as a logical decoding message, not a row.
--
-- Two thirds of a file system's operations are reads. Written as a row of prov_ops, each
-- read made a read-only operation a write transaction: a transaction id, a heap tuple, four
-- index entries and a commit record — recording cost about 12 % of the file system's
-- throughput under `load mix` (docs/provenance.md). A non-transactional logical message is
-- one WAL record: no transaction id, no tuple, no index, no commit. The change stream
-- carries it in WAL order (pgoutput, `messages 'true'`) as a `prov.op` event; the
-- provenance consumer writes it into prov_ops in the transaction that adds it to the
-- graph, with the message's WAL position in `lsn`, unique: a message delivered again
-- (a replay after a crash, a Kafka partition read twice) is logged and counted once.
--
-- What changes for a reader of the log: a read is in prov_ops once the provenance
-- consumer applied it (read-your-writes: wait for the read's token), and a read made in a
-- transaction that rolls back is still recorded: the read happened. A message reaches the
-- change stream once the WAL writer flushed it (within wal_writer_delay), as 0012's reads
-- did; a server crash can lose the last moments' reads, never a change.
ALTER TABLE prov_ops ADD COLUMN lsn pg_lsn;  -- a read's message; NULL for a change's row
CREATE UNIQUE INDEX prov_ops_read_lsn ON prov_ops (lsn) WHERE lsn IS NOT NULL;

CREATE OR REPLACE FUNCTION fs_record(actor integer, app text, op text, node inodes,
                                     detail jsonb DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('epipe.provenance', true) = 'off' THEN
        RETURN;
    END IF;
    IF op = 'read' THEN
        IF app IS NOT NULL AND octet_length(app) NOT BETWEEN 1 AND 255 THEN
            RAISE EXCEPTION 'app id must be 1 to 255 bytes'
                USING ERRCODE = 'check_violation', CONSTRAINT = 'prov_ops_app_id_check';
        END IF;
        PERFORM pg_logical_emit_message(false, 'epipe.prov.read', json_build_object(
            'inode_id', node.id, 'parent_id', node.parent_id, 'user_id', actor,
            'app_id', app, 'name', node.name, 'at', now())::text);
        RETURN;
    END IF;
    INSERT INTO prov_ops (inode_id, parent_id, user_id, op, app_id, name, detail)
    VALUES (node.id, node.parent_id, actor, op, app, node.name, detail);
END $$;
