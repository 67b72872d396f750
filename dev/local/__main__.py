"""`python -m dev.local`: the local stack, as `make run` starts it."""

import sys

from dev.local.stack import main

sys.exit(main())
