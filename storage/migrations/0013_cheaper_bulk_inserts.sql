-- What a new entry costs PostgreSQL, for a million of them in one import
-- (docs/performance.md, "Import apply").
--
-- The stamp trigger ran its PL/pgSQL function for every inserted row, only to
-- set xid, which the column's default already sets to the same value. An
-- insert now calls it only when a writer supplied some other xid (the WHEN
-- test runs without entering PL/pgSQL); updates still go through it always.
DROP TRIGGER forbidden_numbers_stamp ON forbidden_numbers;

CREATE TRIGGER forbidden_numbers_stamp
    BEFORE UPDATE ON forbidden_numbers
    FOR EACH ROW EXECUTE FUNCTION forbidden_numbers_stamp();

CREATE TRIGGER forbidden_numbers_stamp_insert
    BEFORE INSERT ON forbidden_numbers
    FOR EACH ROW WHEN (NEW.xid IS DISTINCT FROM pg_current_xact_id())
    EXECUTE FUNCTION forbidden_numbers_stamp();

-- PostgreSQL 18 makes UUID version 7 itself (uuidv7(), the layout of
-- migration 0007, with a sub-millisecond counter that keeps one session's ids
-- in order); the expression of 0007 stays for older servers.
DO $$
BEGIN
    IF current_setting('server_version_num')::int >= 180000 THEN
        EXECUTE 'CREATE OR REPLACE FUNCTION screening_uuid7() RETURNS uuid
                 LANGUAGE sql VOLATILE PARALLEL SAFE AS $f$ SELECT uuidv7() $f$';
    END IF;
END $$;
