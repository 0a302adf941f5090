-- Tombstone garbage collection. A replica that was away while tombstones it
-- had not read were purged cannot tell what was deleted; purged_xid (the
-- newest purged tombstone's xid) lets it notice and reload fully.
CREATE TABLE sync_meta (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    purged_xid xid8    NOT NULL DEFAULT '0'
);
INSERT INTO sync_meta DEFAULT VALUES;

CREATE INDEX forbidden_numbers_tombstones ON forbidden_numbers (update_time) WHERE deleted;
