"""`python -m longtask`: the commands of an app that mounts longtask (see deploy/cli.py)."""

import sys

from .deploy.cli import main

sys.exit(main())
