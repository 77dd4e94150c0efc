"""``python -m senseops_trainer`` (see :mod:`senseops_trainer.cli`)."""

import sys

from senseops_trainer.cli import main

sys.exit(main())
