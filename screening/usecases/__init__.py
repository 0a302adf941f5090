"""The use cases: screening a call, managing entries, importing files. Plain typed objects, no gRPC."""
