-- What an entry does to the calls it decides: 1 block (every entry written
-- before this column existed), 2 allow (an exception to a broader entry: the
-- most specific qualifying entry decides, screening/usecases/screener.py).
-- A constant default: PostgreSQL adds the column without rewriting the table.
ALTER TABLE forbidden_numbers
    ADD COLUMN action smallint NOT NULL DEFAULT 1 CHECK (action IN (1, 2));
