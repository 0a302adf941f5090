"""Keeping the index equal to PostgreSQL: the replica, the change feed it reads, the LISTEN connection."""
