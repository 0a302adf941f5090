"""`make bench`: the service's speed figures (issue 6), measured side by side on this machine."""
