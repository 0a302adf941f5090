-- Calls each entry decided, summed over every replica: each replica counts in
-- memory and adds its counts here in batches (screening/usecases/hits.py). Not
-- part of the change feed: a count is no change of an entry.
CREATE TABLE entry_hits (
    entry_id uuid        PRIMARY KEY,
    hits     bigint      NOT NULL DEFAULT 0,
    last_hit timestamptz
);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'screening_tenant') THEN
        -- Read only through the entries the tenant's role may see.
        GRANT SELECT ON entry_hits TO screening_tenant;
    END IF;
END $$;
