-- A tenant's settings (a shared list's too: its id starts with "@"). Stamped
-- with the writing transaction's id and announced like entries, so that
-- every replica follows them the same way (screening/sync/settings.py).
CREATE TABLE tenant_settings (
    tenant_id        text        PRIMARY KEY,
    display_name     text        NOT NULL DEFAULT '' CHECK (char_length(display_name) <= 200),
    region           text        NOT NULL DEFAULT '',
    -- 1 allow, 2 block: inbound calls whose caller withheld the number.
    withheld_policy  smallint    NOT NULL DEFAULT 1 CHECK (withheld_policy IN (1, 2)),
    subscribed_lists text[]      NOT NULL DEFAULT '{}',
    revision         bigint      NOT NULL DEFAULT 1,
    update_time      timestamptz NOT NULL DEFAULT now(),
    xid              xid8        NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX tenant_settings_xid ON tenant_settings (xid);

CREATE FUNCTION tenant_settings_stamp() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.xid := pg_current_xact_id();
    IF TG_OP = 'UPDATE' THEN
        NEW.tenant_id := OLD.tenant_id;
        NEW.revision := OLD.revision + 1;
        NEW.update_time := now();
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER tenant_settings_stamp
    BEFORE INSERT OR UPDATE ON tenant_settings
    FOR EACH ROW EXECUTE FUNCTION tenant_settings_stamp();

CREATE TRIGGER tenant_settings_notify
    AFTER INSERT OR UPDATE OR DELETE ON tenant_settings
    FOR EACH STATEMENT EXECUTE FUNCTION forbidden_numbers_notify();

ALTER TABLE tenant_settings ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON tenant_settings
    USING (tenant_id = current_setting('screening.tenant', true))
    WITH CHECK (tenant_id = current_setting('screening.tenant', true));

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'screening_tenant') THEN
        GRANT SELECT, INSERT, UPDATE ON tenant_settings TO screening_tenant;
    END IF;
END $$;
