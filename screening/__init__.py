"""Call screening: is this customer number forbidden for this enterprise and direction?

Importing this package chooses gRPC's listener: grpc reads GRPC_EXPERIMENTS
once, when it is first imported, so this has to run before any `import grpc`
(every entry point imports this package first). gRPC's newer EventEngine
listener reads and writes sockets on a pool of its own threads and hands each
call over to the completion-queue thread; the classic one does that I/O on
the completion-queue thread itself. Measured on 2 cores with h2load (`make
bench` figure g, and one worker pinned to one core): one thread hop less per
call, 7% less server CPU per ScreenCall, 12-13% more calls per second, and 12%
more with two workers. An operator's own GRPC_EXPERIMENTS is left as it is.
"""

import os
import sys

GRPC_EXPERIMENTS = "-event_engine_listener"

# Whether the choice above is in effect: not when grpc was imported first.
GRPC_RUNTIME_CHOSEN = "grpc" not in sys.modules and "GRPC_EXPERIMENTS" not in os.environ
if GRPC_RUNTIME_CHOSEN:
    os.environ["GRPC_EXPERIMENTS"] = GRPC_EXPERIMENTS
