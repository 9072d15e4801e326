"""The frozen binary's entry point: the same as `python3 -m guardian`."""
import sys

from guardian.cli import main

sys.exit(main())
