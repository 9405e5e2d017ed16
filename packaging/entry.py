"""The frozen app's entry point: the same ``hookline`` command as the installed one."""

import sys

from desktop.launcher import main

if __name__ == "__main__":
    sys.exit(main())
