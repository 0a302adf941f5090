"""`make bench`: the service's speed figures (issue 6), measured side by side on this machine."""

import screening  # noqa: F401 - first: the floor (bench.noop) runs the same gRPC runtime as the server
