"""``python -m recaffe``: the command-line tool (see :mod:`recaffe.cli`)."""

import sys

from recaffe.cli.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
