import sys

from scripts.loop.run import main

sys.exit(main())
