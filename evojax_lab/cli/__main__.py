"""``python -m evojax_lab.cli``."""

import sys

from evojax_lab.cli import main

sys.exit(main())
