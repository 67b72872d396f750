"""`python -m dev.deploy`: what `make deploy` and `make destroy` run."""

import sys

from dev.deploy.cli import main

sys.exit(main())
