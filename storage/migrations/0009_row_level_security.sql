-- A second wall between tenants, in PostgreSQL itself: admin queries run as
-- the role screening_tenant with the calling tenant in screening.tenant (both
-- set per transaction, storage/tenancy.py), and row-level security lets that
-- role see and write only that tenant's rows. A query that forgets its
-- tenant filter then finds nothing of another tenant. The change feed, the
-- first load, tombstone purges and cross-tenant listings run as the owner,
-- which the policies do not bind.
--
-- Creating a role needs CREATEROLE: where the database user lacks it (some
-- managed services), the role is not made, the server logs so at start, and
-- the application's own checks are the only wall.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'screening_tenant') THEN
        CREATE ROLE screening_tenant NOLOGIN;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'cannot create the role screening_tenant: row-level security stays off';
END $$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'screening_tenant') THEN
        BEGIN
            EXECUTE 'GRANT screening_tenant TO ' || quote_ident(current_user);
        EXCEPTION WHEN insufficient_privilege OR invalid_grant_operation THEN
            NULL;  -- a superuser needs no membership; others were granted it when the role was made
        END;
        EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO screening_tenant', current_database());
        GRANT USAGE ON SCHEMA public TO screening_tenant;
        GRANT SELECT, INSERT, UPDATE ON forbidden_numbers, audit_events, import_jobs, import_job_rows
            TO screening_tenant;
        GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO screening_tenant;
    END IF;
END $$;

ALTER TABLE forbidden_numbers ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE import_jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE import_job_rows ENABLE ROW LEVEL SECURITY;

CREATE POLICY tenant_rows ON forbidden_numbers
    USING (tenant_id = current_setting('screening.tenant', true))
    WITH CHECK (tenant_id = current_setting('screening.tenant', true));
CREATE POLICY tenant_rows ON audit_events
    USING (tenant_id = current_setting('screening.tenant', true))
    WITH CHECK (tenant_id = current_setting('screening.tenant', true));
CREATE POLICY tenant_rows ON import_jobs
    USING (tenant_id = current_setting('screening.tenant', true))
    WITH CHECK (tenant_id = current_setting('screening.tenant', true));
-- A job's lines belong to the job's tenant (the subquery is bound by import_jobs' own policy).
CREATE POLICY tenant_rows ON import_job_rows
    USING (EXISTS (SELECT 1 FROM import_jobs j WHERE j.id = job_id))
    WITH CHECK (EXISTS (SELECT 1 FROM import_jobs j WHERE j.id = job_id));
