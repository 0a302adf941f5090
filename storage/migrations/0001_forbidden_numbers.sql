-- Forbidden numbers, with the change tracking that replicas follow.
--
-- Every insert or update stamps the row with the writing transaction's id
-- (xid). Replicas read rows whose xid is at or above their watermark and move
-- the watermark to the xmin of the snapshot they read in: every transaction
-- below xmin has finished, so no change can appear behind the watermark later,
-- whatever order concurrent writers commit in. Deletes are tombstones
-- (deleted = true) so that replicas learn of them the same way.

CREATE TABLE forbidden_numbers (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   text        NOT NULL,
    number      text        NOT NULL,
    match_kind  smallint    NOT NULL CHECK (match_kind IN (1, 2)),
    call_type   smallint    NOT NULL CHECK (call_type IN (1, 2, 3)),
    enabled     boolean     NOT NULL DEFAULT true,
    note        text        NOT NULL DEFAULT '' CHECK (char_length(note) <= 500),
    expire_time timestamptz,
    create_time timestamptz NOT NULL DEFAULT now(),
    update_time timestamptz NOT NULL DEFAULT now(),
    revision    bigint      NOT NULL DEFAULT 1,
    deleted     boolean     NOT NULL DEFAULT false,
    xid         xid8        NOT NULL DEFAULT pg_current_xact_id()
);

-- One live entry per (tenant, number, match kind); tombstones do not count.
CREATE UNIQUE INDEX forbidden_numbers_key
    ON forbidden_numbers (tenant_id, number, match_kind) WHERE NOT deleted;
CREATE INDEX forbidden_numbers_xid ON forbidden_numbers (xid);

CREATE FUNCTION forbidden_numbers_stamp() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.xid := pg_current_xact_id();
    IF TG_OP = 'UPDATE' THEN
        NEW.id := OLD.id;
        NEW.tenant_id := OLD.tenant_id;
        NEW.create_time := OLD.create_time;
        NEW.revision := OLD.revision + 1;
        NEW.update_time := now();
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER forbidden_numbers_stamp
    BEFORE INSERT OR UPDATE ON forbidden_numbers
    FOR EACH ROW EXECUTE FUNCTION forbidden_numbers_stamp();

-- A wake-up only, with no payload: PostgreSQL folds identical notifications
-- of one transaction into one, so a bulk change costs one notification.
CREATE FUNCTION forbidden_numbers_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('screening_changes', '');
    RETURN NULL;
END $$;

CREATE TRIGGER forbidden_numbers_notify
    AFTER INSERT OR UPDATE OR DELETE ON forbidden_numbers
    FOR EACH STATEMENT EXECUTE FUNCTION forbidden_numbers_notify();

-- Who changed what, written in the transaction of the change itself.
CREATE TABLE audit_events (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   text        NOT NULL,
    actor       text        NOT NULL,
    action      text        NOT NULL,
    resource_id text        NOT NULL,
    request_id  text        NOT NULL DEFAULT '',
    before      jsonb,
    after       jsonb,
    create_time timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX audit_events_tenant ON audit_events (tenant_id, id DESC);
