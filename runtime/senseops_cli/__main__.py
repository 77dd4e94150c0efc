"""``python -m senseops_cli`` = ``senseops``."""

import sys

from senseops_cli import main

sys.exit(main())
