"""The process: configuration, assembling the service, serving, workers, the embedded PostgreSQL, logs."""
