-- Imports of files: every bad line kept with its cells, counts that add up,
-- progress in bytes, and each entry's history of the imports that changed it.

ALTER TABLE import_jobs
    ADD COLUMN unchanged_count  bigint   NOT NULL DEFAULT 0,
    ADD COLUMN superseded_count bigint   NOT NULL DEFAULT 0,
    -- 0 rows sent by a program, 1 CSV, 2 xlsx.
    ADD COLUMN file_format      smallint NOT NULL DEFAULT 0 CHECK (file_format IN (0, 1, 2)),
    ADD COLUMN file_size        bigint   NOT NULL DEFAULT 0,
    ADD COLUMN bytes_received   bigint   NOT NULL DEFAULT 0,
    -- The file's header as written; the failed-rows file repeats it.
    ADD COLUMN columns          text[]   NOT NULL DEFAULT '{}';

-- Every bad line of an import (kind 1) and every line a later line of the
-- same import superseded (kind 2). Written outside the import's own
-- transaction for bad lines, so that a failed import keeps them too.
CREATE TABLE import_job_rows (
    job_id      uuid     NOT NULL REFERENCES import_jobs (id) ON DELETE CASCADE,
    kind        smallint NOT NULL CHECK (kind IN (1, 2)),
    line        bigint   NOT NULL,
    number      text     NOT NULL DEFAULT '',
    cells       text[]   NOT NULL DEFAULT '{}',
    reason      text     NOT NULL DEFAULT '',
    column_name text     NOT NULL DEFAULT '',
    by_line     bigint   NOT NULL DEFAULT 0
);
CREATE INDEX import_job_rows_job ON import_job_rows (job_id, kind, line);

-- The bad rows older jobs kept in import_jobs.errors move here. The old
-- columns stay (a replica of the previous version may still read them).
INSERT INTO import_job_rows (job_id, kind, line, number, reason)
SELECT j.id, 1, (e ->> 0)::bigint, e ->> 1, e ->> 2
FROM import_jobs j, jsonb_array_elements(j.errors) e;

ALTER TABLE audit_events
    ADD COLUMN import_job_id  uuid,
    ADD COLUMN changed_fields text[] NOT NULL DEFAULT '{}';
-- An entry's history, newest first.
CREATE INDEX audit_events_resource ON audit_events (tenant_id, resource_id, id DESC);
