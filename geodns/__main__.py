"""`python -m geodns` runs the CLI."""

import sys

from geodns.cli import main

sys.exit(main())
