"""`python -m screening`: the `screening` command (screening/app/main.py)."""

import sys

from screening.app.main import main

sys.exit(main())
