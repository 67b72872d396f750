"""`python -m bench`: every benchmark, as `make bench` runs them."""

import sys

from bench.run import main

sys.exit(main())
