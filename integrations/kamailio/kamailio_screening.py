"""Entry point for Kamailio's app_python3: `modparam("app_python3", "load", ".../kamailio_screening.py")`.

The config file is named by the SCREENING_KAMAILIO_CONFIG environment variable,
else screening.toml next to this script. It is read with the standard library
first, because it may name site-packages to put on sys.path.
"""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from sipscreen.settings import load  # noqa: E402  # needs HERE on sys.path


def mod_init() -> object:
    settings = load(Path(os.environ.get("SCREENING_KAMAILIO_CONFIG") or HERE / "screening.toml"))
    settings.activate_site_packages()
    # Imported in the main process so that a broken install stops Kamailio at start;
    # connections are only made in the forked workers.
    from sipscreen.router import Router

    router = Router(settings)
    # Everything loaded so far lives as long as Kamailio: keep the collector off
    # it (shorter pauses in the workers, and their pages stay shared after fork).
    gc.freeze()
    return router
