"""screenctl, the admin command line (console script `screenctl`)."""
