"""The gRPC face: servicers that translate, status mapping, auth, the access log, TLS, metrics."""
