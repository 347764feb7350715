"""`python -m reactor` runs the `reactor` command."""

import sys

from reactor.cli import main

sys.exit(main())
