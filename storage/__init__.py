"""PostgreSQL storage, the lowest layer: migrations, rows, queries and the change feed; imports nothing from screening."""
