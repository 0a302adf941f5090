-- An import writes a batch of new entries while it still reads the file
-- (storage/import_jobs.py, _EARLY_INSERT); a later line of the same file for
-- one of them is applied to it in the same transaction. No one saw the first
-- version, so the entry keeps revision 1 (and its etag): it is created, as
-- when its last line alone was written. Other updates count up as before.
CREATE OR REPLACE FUNCTION forbidden_numbers_stamp() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.xid := pg_current_xact_id();
    IF TG_OP = 'UPDATE' THEN
        NEW.id := OLD.id;
        NEW.tenant_id := OLD.tenant_id;
        NEW.create_time := OLD.create_time;
        NEW.revision := CASE WHEN OLD.xid = NEW.xid THEN OLD.revision ELSE OLD.revision + 1 END;
        NEW.update_time := now();
    END IF;
    RETURN NEW;
END $$;
