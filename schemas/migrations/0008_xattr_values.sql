-- 0008: what an xattr value may hold, checked by the database too (docs/xattr-values.md).
--
-- The namespace layer (epipe/fs/xattrs.py) refuses these values before they reach the
-- server; this constraint holds the same limits for every other writer: the namespace
-- functions called over plain SQL, and INSERTs into xattrs. A refused value is EINVAL with
-- the limit named, as from the namespace layer.
--   * nesting: at most 64 levels of arrays and objects (orjson stops at 255 and tantivy at
--     about 250; jsonb itself takes ~990 with the default max_stack_depth);
--   * numbers: within the range of a double, 0 or 4.9e-324 .. 1.8e308 in magnitude (jsonb
--     keeps up to 131,072 digits; the index and the pipeline's JSON read doubles).
-- NOT VALID: rows written before this migration stay; the pipeline copes with them.

CREATE FUNCTION fs_xattr_value_problem(value jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN jsonb_path_exists(value,
                 'strict $.**{64} ? (@.type() == "object" || @.type() == "array")')
        THEN 'xattr value is nested more than 64 levels deep; the limit is 64'
        WHEN jsonb_path_exists(value,
                 'strict $.** ? (@.type() == "number" && (@ > 1.7976931348623157e308
                     || @ < -1.7976931348623157e308
                     || (@ != 0 && @.abs() < 4.9406564584124654e-324)))')
        THEN 'xattr value holds a number beyond the range of a double '
             '(0 or 4.9e-324 .. 1.8e308 in magnitude)'
    END
$$;

-- Raises EINVAL naming the problem (the CHECK would otherwise only name the constraint).
CREATE FUNCTION fs_xattr_value_refuse(value jsonb) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'EF022', MESSAGE = 'EINVAL',
        HINT = fs_xattr_value_problem(value);
END $$;

-- The common case costs one pass of each path expression (C); only a refusal runs PL/pgSQL.
ALTER TABLE xattrs ADD CONSTRAINT xattrs_value_representable
    CHECK (CASE WHEN fs_xattr_value_problem(value) IS NULL THEN true
                ELSE fs_xattr_value_refuse(value) END) NOT VALID;
