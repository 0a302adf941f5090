"""PostgreSQL storage: schema migrations, queries and the change listener."""
