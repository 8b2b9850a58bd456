-- 0003: project creation: the project, its group, the owner's membership and the project's
-- root directory /Projects/<name> (owned by the owner, group = the project's group, 0770),
-- all in one transaction.

CREATE FUNCTION project_create(pname text, owner integer, app text) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    gid integer;
    pid integer;
    parent inodes;
    root inodes;
BEGIN
    INSERT INTO groups (name) VALUES (pname) RETURNING id INTO gid;
    INSERT INTO projects (name, owner_id, group_id) VALUES (pname, owner, gid) RETURNING id INTO pid;
    INSERT INTO memberships (project_id, user_id, role) VALUES (pid, owner, 'owner');
    PERFORM fs_mkdir(0, app, ARRAY['Projects'], true);
    parent := fs_lookup(ARRAY['Projects']);
    SELECT * INTO root FROM inodes WHERE parent_id = parent.id AND name = pname FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO inodes (parent_id, owner_id, group_id, mode, kind, name)
        VALUES (parent.id, owner, gid, 504, 'd', pname)  -- 0770
        RETURNING * INTO root;
        PERFORM fs_record(0, app, 'mkdir', root);
    ELSIF root.kind = 'd' THEN  -- adopt a directory the superuser made before the project
        UPDATE inodes SET owner_id = owner, group_id = gid, mode = 504, ctime = now()
        WHERE id = root.id;
    ELSE
        PERFORM fs_error('EEXIST', ARRAY['Projects', pname], 'a file has the project''s name');
    END IF;
    RETURN pid;
END $$;
