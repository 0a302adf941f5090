import screening  # noqa: F401 - before any grpc import: the servers under test run gRPC as the product does
