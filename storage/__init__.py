"""PostgreSQL storage, the lowest layer: migrations, rows, queries, the change feed; nothing from screening."""
