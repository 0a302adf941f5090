-- Bulk import jobs. A job row is written outside the import's own
-- transaction, so it outlives an import that rolls back: RUNNING while rows
-- stream in (total_rows is the progress), then SUCCEEDED together with the
-- imported entries, or FAILED with its reason.

CREATE TABLE import_jobs (
    id             uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Creation order, for newest-first listing and its page tokens.
    seq            bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,
    tenant_id      text        NOT NULL,
    state          smallint    NOT NULL CHECK (state IN (1, 2, 3)),
    mode           smallint    NOT NULL CHECK (mode IN (1, 2)),
    source_name    text        NOT NULL DEFAULT '',
    actor          text        NOT NULL DEFAULT '',
    total_rows     bigint      NOT NULL DEFAULT 0,
    created_count  bigint      NOT NULL DEFAULT 0,
    updated_count  bigint      NOT NULL DEFAULT 0,
    skipped_count  bigint      NOT NULL DEFAULT 0,
    failed_count   bigint      NOT NULL DEFAULT 0,
    -- The first bad rows as [line, number, reason] arrays, in line order.
    errors         jsonb       NOT NULL DEFAULT '[]',
    error_count    integer     NOT NULL DEFAULT 0,
    failure_reason text        NOT NULL DEFAULT '',
    create_time    timestamptz NOT NULL DEFAULT now(),
    -- Touched by the replica running the job; a RUNNING job whose heartbeat
    -- stopped belongs to a replica that died, and is reported as FAILED.
    heartbeat_time timestamptz NOT NULL DEFAULT now(),
    finish_time    timestamptz
);

CREATE INDEX import_jobs_tenant ON import_jobs (tenant_id, seq DESC);
