"""`python -m app.bench`: the bench on its own (see app.bench.cli)."""

import sys

from app.bench.cli import main

sys.exit(main())
