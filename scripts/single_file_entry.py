"""The single executable's entry point (PyInstaller): the ``queueapp`` command."""

import sys

from queueapp.cli import main

if __name__ == "__main__":
    sys.exit(main())
