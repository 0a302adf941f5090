-- What an import's rows cost PostgreSQL besides the rows themselves
-- (docs/performance.md, "Import apply").
--
-- The tenant policies compared each row with current_setting(), a function
-- call per row; as a sub-select the setting is read once a statement (an
-- init plan). Same meaning: the row's tenant must be the transaction's.
ALTER POLICY tenant_rows ON forbidden_numbers
    USING (tenant_id = (SELECT current_setting('screening.tenant', true)))
    WITH CHECK (tenant_id = (SELECT current_setting('screening.tenant', true)));
ALTER POLICY tenant_rows ON audit_events
    USING (tenant_id = (SELECT current_setting('screening.tenant', true)))
    WITH CHECK (tenant_id = (SELECT current_setting('screening.tenant', true)));
ALTER POLICY tenant_rows ON import_jobs
    USING (tenant_id = (SELECT current_setting('screening.tenant', true)))
    WITH CHECK (tenant_id = (SELECT current_setting('screening.tenant', true)));
ALTER POLICY tenant_rows ON tenant_settings
    USING (tenant_id = (SELECT current_setting('screening.tenant', true)))
    WITH CHECK (tenant_id = (SELECT current_setting('screening.tenant', true)));

-- The audit trail's indexes were ordered id DESC, so each new event (ids
-- ascend) went to the left end of its tenant's range: no fast path for the
-- right-most page, and pages split in the middle. In ascending order new
-- events append; "newest first" reads the same index backwards.
CREATE INDEX audit_events_tenant_asc ON audit_events (tenant_id, id);
DROP INDEX audit_events_tenant;
ALTER INDEX audit_events_tenant_asc RENAME TO audit_events_tenant;
CREATE INDEX audit_events_resource_asc ON audit_events (tenant_id, resource_id, id);
DROP INDEX audit_events_resource;
ALTER INDEX audit_events_resource_asc RENAME TO audit_events_resource;
