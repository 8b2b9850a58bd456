-- 0002: the namespace operations, each one server-side function = one transaction = one
-- round trip. Paths arrive already validated and split into components by the namespace
-- layer (epipe/fs/paths.py). Errors are raised with SQLSTATE 'EF' + errno and the POSIX
-- name as message, the path as detail; epipe/fs/namespace.py turns them into FsError.
--
-- Concurrency (READ COMMITTED):
--   * duplicate names are impossible (unique (parent_id, name)); a lost race is EEXIST;
--   * orphans are impossible (FK); a create under a directory being removed fails ENOENT;
--   * cycles: only a directory moving to another parent can create one, so such moves take
--     one advisory lock, then check ancestry on the current rows. Directory moves are
--     O(1) row updates, so the lock is held for one short transaction.

CREATE FUNCTION fs_path_text(parts text[]) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT '/' || array_to_string(parts, '/') $$;

CREATE FUNCTION fs_error(code text, parts text[], hint text DEFAULT '') RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING
        ERRCODE = CASE code
            WHEN 'ENOENT' THEN 'EF002' WHEN 'EACCES' THEN 'EF013' WHEN 'EEXIST' THEN 'EF017'
            WHEN 'ENOTDIR' THEN 'EF020' WHEN 'EISDIR' THEN 'EF021' WHEN 'EINVAL' THEN 'EF022'
            WHEN 'ENOTEMPTY' THEN 'EF039' WHEN 'ENODATA' THEN 'EF061' ELSE 'EF000' END,
        MESSAGE = code, DETAIL = fs_path_text(parts), HINT = hint;
END $$;

-- Access: the superuser may do anything; anyone else only inside /Projects/<p> of a project
-- they belong to. need = 'read' | 'write' (change an existing entry) | 'entry' (create,
-- remove or rename the entry itself, which must lie below the project root).
CREATE FUNCTION fs_authorize(actor integer, parts text[], need text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    member_role text;
    depth integer := coalesce(array_length(parts, 1), 0);
BEGIN
    IF (SELECT is_superuser FROM users WHERE id = actor) THEN
        RETURN;
    END IF;
    IF depth >= 2 AND parts[1] = 'Projects' THEN
        SELECT m.role INTO member_role
        FROM projects p JOIN memberships m ON m.project_id = p.id AND m.user_id = actor
        WHERE p.name = parts[2];
        IF FOUND AND (need = 'read' OR member_role <> 'reader')
                 AND (need <> 'entry' OR depth >= 3) THEN
            RETURN;
        END IF;
    END IF;
    PERFORM fs_error('EACCES', parts);
END $$;

CREATE FUNCTION fs_is_superuser(actor integer) RETURNS boolean
LANGUAGE sql STABLE AS $$ SELECT coalesce((SELECT is_superuser FROM users WHERE id = actor), false) $$;

-- Resolve a path: ENOENT if a component is missing, ENOTDIR if a non-final one is a file.
CREATE FUNCTION fs_lookup(parts text[]) RETURNS inodes
LANGUAGE plpgsql AS $$
DECLARE
    node inodes;
BEGIN
    SELECT * INTO node FROM inodes WHERE id = 1;
    FOR i IN 1 .. coalesce(array_length(parts, 1), 0) LOOP
        IF node.kind <> 'd' THEN
            PERFORM fs_error('ENOTDIR', parts, fs_path_text(parts[1:i - 1]) || ' is a file');
        END IF;
        SELECT * INTO node FROM inodes WHERE parent_id = node.id AND name = parts[i];
        IF NOT FOUND THEN
            PERFORM fs_error('ENOENT', parts);
        END IF;
    END LOOP;
    RETURN node;
END $$;

-- The directory that will hold the last component of `parts`.
CREATE FUNCTION fs_lookup_parent(parts text[]) RETURNS inodes
LANGUAGE plpgsql AS $$
DECLARE
    dir inodes;
BEGIN
    dir := fs_lookup(parts[1:array_length(parts, 1) - 1]);
    IF dir.kind <> 'd' THEN
        PERFORM fs_error('ENOTDIR', parts, fs_path_text(parts[1:array_length(parts, 1) - 1])
                                           || ' is a file');
    END IF;
    RETURN dir;
END $$;

CREATE FUNCTION fs_record(actor integer, app text, op text, node inodes, detail jsonb DEFAULT NULL)
RETURNS void
LANGUAGE sql AS $$
    INSERT INTO prov_ops (inode_id, parent_id, user_id, op, app_id, name, detail)
    VALUES (node.id, node.parent_id, actor, op, app, node.name, detail)
$$;

CREATE FUNCTION fs_mkdir(actor integer, app text, parts text[], parents boolean)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    depth integer := coalesce(array_length(parts, 1), 0);
    node inodes;
    child inodes;
BEGIN
    IF depth = 0 THEN
        IF parents THEN RETURN 1; END IF;
        PERFORM fs_error('EEXIST', parts);
    END IF;
    PERFORM fs_authorize(actor, parts, 'entry');
    SELECT * INTO node FROM inodes WHERE id = 1;
    FOR i IN 1 .. depth LOOP
        IF node.kind <> 'd' THEN
            PERFORM fs_error('ENOTDIR', parts, fs_path_text(parts[1:i - 1]) || ' is a file');
        END IF;
        SELECT * INTO child FROM inodes WHERE parent_id = node.id AND name = parts[i];
        IF NOT FOUND THEN
            IF i < depth AND NOT parents THEN
                PERFORM fs_error('ENOENT', parts);
            END IF;
            IF i < 3 AND NOT fs_is_superuser(actor) THEN  -- /Projects/<p> itself is root's
                PERFORM fs_error('EACCES', parts);
            END IF;
            INSERT INTO inodes (parent_id, owner_id, group_id, mode, kind, name)
            VALUES (node.id, actor, node.group_id, 493, 'd', parts[i])  -- 0755
            ON CONFLICT (parent_id, name) DO NOTHING
            RETURNING * INTO child;
            IF FOUND THEN
                PERFORM fs_record(actor, app, 'mkdir', child);
            ELSE  -- created by a concurrent transaction that has committed since
                SELECT * INTO child FROM inodes WHERE parent_id = node.id AND name = parts[i];
                IF NOT FOUND THEN
                    PERFORM fs_error('ENOENT', parts);
                END IF;
                IF i = depth AND NOT (parents AND child.kind = 'd') THEN
                    PERFORM fs_error('EEXIST', parts);
                END IF;
            END IF;
        ELSIF i = depth AND NOT (parents AND child.kind = 'd') THEN
            PERFORM fs_error('EEXIST', parts);
        END IF;
        node := child;
    END LOOP;
    RETURN node.id;
END $$;

-- Create a file; with `overwrite`, an existing file is rewritten in place (same inode).
CREATE FUNCTION fs_create(actor integer, app text, parts text[], new_size bigint,
                          overwrite boolean)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    dir inodes;
    node inodes;
BEGIN
    IF coalesce(array_length(parts, 1), 0) = 0 THEN
        PERFORM fs_error('EISDIR', parts);
    END IF;
    PERFORM fs_authorize(actor, parts, 'entry');
    dir := fs_lookup_parent(parts);
    INSERT INTO inodes (parent_id, size, owner_id, group_id, mode, kind, name)
    VALUES (dir.id, new_size, actor, dir.group_id, 420, 'f', parts[array_length(parts, 1)])
    ON CONFLICT (parent_id, name) DO NOTHING
    RETURNING * INTO node;
    IF FOUND THEN
        PERFORM fs_record(actor, app, 'create', node, jsonb_build_object('size', new_size));
        RETURN node.id;
    END IF;
    SELECT * INTO node FROM inodes WHERE parent_id = dir.id AND name = parts[array_length(parts, 1)];
    IF FOUND AND node.kind = 'd' THEN
        PERFORM fs_error('EISDIR', parts);
    ELSIF FOUND AND NOT overwrite THEN
        PERFORM fs_error('EEXIST', parts);
    END IF;
    RETURN fs_write(actor, app, parts, new_size);
END $$;

-- A write to an existing file: new size, new mtime.
CREATE FUNCTION fs_write(actor integer, app text, parts text[], new_size bigint)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    node inodes;
BEGIN
    PERFORM fs_authorize(actor, parts, 'write');
    node := fs_lookup(parts);
    IF node.kind = 'd' THEN
        PERFORM fs_error('EISDIR', parts);
    END IF;
    UPDATE inodes SET size = new_size, mtime = now(), ctime = now()
    WHERE id = node.id
    RETURNING * INTO node;
    IF NOT FOUND THEN  -- removed by a transaction that committed after our lookup
        PERFORM fs_error('ENOENT', parts);
    END IF;
    PERFORM fs_record(actor, app, 'write', node, jsonb_build_object('size', new_size));
    RETURN node.id;
END $$;

-- Remove a file or an empty directory; with `recursive`, a whole subtree in this one
-- transaction (the FK cascade deletes descendants and their xattrs).
CREATE FUNCTION fs_remove(actor integer, app text, parts text[], recursive boolean)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    node inodes;
BEGIN
    IF coalesce(array_length(parts, 1), 0) = 0 THEN
        PERFORM fs_error('EINVAL', parts, 'the root directory cannot be removed');
    END IF;
    PERFORM fs_authorize(actor, parts, 'entry');
    node := fs_lookup(parts);
    -- The row lock waits for concurrent creates below this directory (their FK check holds a
    -- key-share lock on it) and blocks new ones, so the emptiness check below is exact.
    PERFORM 1 FROM inodes WHERE id = node.id FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM fs_error('ENOENT', parts);
    END IF;
    IF node.kind = 'd' AND NOT recursive
       AND EXISTS (SELECT 1 FROM inodes WHERE parent_id = node.id) THEN
        PERFORM fs_error('ENOTEMPTY', parts);
    END IF;
    DELETE FROM inodes WHERE id = node.id AND parent_id = node.parent_id AND name = node.name;
    IF NOT FOUND THEN  -- moved away by a transaction that committed after our lookup
        PERFORM fs_error('ENOENT', parts);
    END IF;
    PERFORM fs_record(actor, app, 'delete', node);
    RETURN node.id;
END $$;

-- Atomic rename; an existing destination is EEXIST (never a silent overwrite).
CREATE FUNCTION fs_move(actor integer, app text, src text[], dst text[])
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    src_depth integer := coalesce(array_length(src, 1), 0);
    dst_depth integer := coalesce(array_length(dst, 1), 0);
    node inodes;
    dir inodes;
    moved inodes;
BEGIN
    IF src_depth = 0 THEN
        PERFORM fs_error('EINVAL', src, 'the root directory cannot be moved');
    ELSIF dst_depth = 0 OR dst = src THEN
        PERFORM fs_error('EEXIST', dst);
    ELSIF dst_depth > src_depth AND dst[1:src_depth] = src THEN
        PERFORM fs_error('EINVAL', dst, 'cannot move ' || fs_path_text(src)
                                        || ' into its own subtree');
    END IF;
    PERFORM fs_authorize(actor, src, 'entry');
    PERFORM fs_authorize(actor, dst, 'entry');
    node := fs_lookup(src);
    dir := fs_lookup_parent(dst);
    IF node.kind = 'd' AND dir.id <> node.parent_id THEN
        PERFORM pg_advisory_xact_lock(hashtext('epipe.fs.directory-move'));
        dir := fs_lookup_parent(dst);  -- again, now that earlier directory moves are done
        IF EXISTS (
            WITH RECURSIVE up (id, parent_id) AS (
                SELECT id, parent_id FROM inodes WHERE id = dir.id
                UNION ALL
                SELECT i.id, i.parent_id FROM inodes i JOIN up ON i.id = up.parent_id
            )
            SELECT 1 FROM up WHERE up.id = node.id
        ) THEN
            PERFORM fs_error('EINVAL', dst, 'cannot move ' || fs_path_text(src)
                                            || ' into its own subtree');
        END IF;
    END IF;
    BEGIN
        UPDATE inodes SET parent_id = dir.id, name = dst[dst_depth], ctime = now()
        WHERE id = node.id AND parent_id = node.parent_id AND name = node.name
        RETURNING * INTO moved;
    EXCEPTION WHEN unique_violation THEN
        PERFORM fs_error('EEXIST', dst);
    END;
    IF moved.id IS NULL THEN  -- moved or removed by a transaction that committed meanwhile
        PERFORM fs_error('ENOENT', src);
    END IF;
    PERFORM fs_record(actor, app, 'move', moved,
                      jsonb_build_object('from_parent_id', node.parent_id, 'from_name', node.name));
    RETURN node.id;
END $$;

-- A read of a file's content (`fs cat`): recorded for provenance.
CREATE FUNCTION fs_read(actor integer, app text, parts text[]) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    node inodes;
BEGIN
    PERFORM fs_authorize(actor, parts, 'read');
    node := fs_lookup(parts);
    IF node.kind = 'd' THEN
        PERFORM fs_error('EISDIR', parts);
    END IF;
    PERFORM fs_record(actor, app, 'read', node);
    RETURN node.id;
END $$;

-- Changing an xattr: write access, and the superuser alone for the `system` namespace.
CREATE FUNCTION fs_authorize_xattr(actor integer, parts text[], ns text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM fs_authorize(actor, parts, 'write');
    IF ns = 'system' AND NOT fs_is_superuser(actor) THEN
        PERFORM fs_error('EACCES', parts, 'only the superuser changes system attributes');
    END IF;
END $$;

CREATE FUNCTION fs_setxattr(actor integer, app text, parts text[], ns text, xname text,
                            xvalue jsonb)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    node inodes;
BEGIN
    PERFORM fs_authorize_xattr(actor, parts, ns);
    node := fs_lookup(parts);
    INSERT INTO xattrs (inode_id, namespace, name, value)
    VALUES (node.id, ns, xname, xvalue)
    ON CONFLICT (inode_id, namespace, name) DO UPDATE SET value = EXCLUDED.value;
    PERFORM fs_record(actor, app, 'setxattr', node, jsonb_build_object('xattr', ns || '.' || xname));
    RETURN node.id;
END $$;

CREATE FUNCTION fs_rmxattr(actor integer, app text, parts text[], ns text, xname text)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    node inodes;
BEGIN
    PERFORM fs_authorize_xattr(actor, parts, ns);
    node := fs_lookup(parts);
    DELETE FROM xattrs WHERE inode_id = node.id AND namespace = ns AND name = xname;
    IF NOT FOUND THEN
        PERFORM fs_error('ENODATA', parts, 'no attribute ' || ns || '.' || xname);
    END IF;
    PERFORM fs_record(actor, app, 'rmxattr', node, jsonb_build_object('xattr', ns || '.' || xname));
    RETURN node.id;
END $$;

-- Reads that are not recorded: stat, list, getxattr.
CREATE TYPE fs_entry AS (
    id bigint, parent_id bigint, name text, kind "char", size bigint, mode smallint,
    mtime timestamptz, ctime timestamptz, owner text, grp text
);

CREATE FUNCTION fs_entries(nodes inodes[]) RETURNS SETOF fs_entry
LANGUAGE sql STABLE AS $$
    SELECT n.id, n.parent_id, n.name, n.kind, n.size, n.mode, n.mtime, n.ctime,
           coalesce(u.name, n.owner_id::text), coalesce(g.name, n.group_id::text)
    FROM unnest(nodes) WITH ORDINALITY AS n
    LEFT JOIN users u ON u.id = n.owner_id
    LEFT JOIN groups g ON g.id = n.group_id
    ORDER BY n.ordinality
$$;

CREATE FUNCTION fs_stat(actor integer, parts text[]) RETURNS SETOF fs_entry
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM fs_authorize(actor, parts, 'read');
    RETURN QUERY SELECT * FROM fs_entries(ARRAY[fs_lookup(parts)]);
END $$;

-- A directory's entries in name order, `page` at a time after `after` (keyset pagination
-- on the (parent_id, name) index); a file lists as itself.
CREATE FUNCTION fs_list(actor integer, parts text[], after text, page integer)
RETURNS SETOF fs_entry
LANGUAGE plpgsql AS $$
DECLARE
    node inodes;
BEGIN
    PERFORM fs_authorize(actor, parts, 'read');
    node := fs_lookup(parts);
    IF node.kind = 'f' THEN
        RETURN QUERY SELECT * FROM fs_entries(ARRAY[node]);
        RETURN;
    END IF;
    RETURN QUERY SELECT * FROM fs_entries(ARRAY(
        SELECT i FROM inodes i
        WHERE i.parent_id = node.id AND (after IS NULL OR i.name > after)
        ORDER BY i.name LIMIT page));
END $$;

CREATE FUNCTION fs_getxattrs(actor integer, parts text[], ns text, xname text)
RETURNS TABLE (namespace text, name text, value jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    node inodes;
BEGIN
    PERFORM fs_authorize(actor, parts, 'read');
    node := fs_lookup(parts);
    RETURN QUERY SELECT x.namespace, x.name, x.value FROM xattrs x
        WHERE x.inode_id = node.id
          AND (ns IS NULL OR (x.namespace = ns AND x.name = xname))
        ORDER BY x.namespace, x.name;
    IF NOT FOUND AND ns IS NOT NULL THEN
        PERFORM fs_error('ENODATA', parts, 'no attribute ' || ns || '.' || xname);
    END IF;
END $$;
