"""``python -m hepvld <command>``: the same as ``hepvld <command>`` (:mod:`hepvld.cli`)."""

import sys

from hepvld.cli import main

if __name__ == "__main__":
    sys.exit(main())
