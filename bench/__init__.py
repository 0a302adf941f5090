"""`make bench`: the service's speed figures, measured side by side on this machine."""
