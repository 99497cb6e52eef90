"""``python -m fused_inception <command>``: see :mod:`fused_inception.tools.cli`."""

import sys

from fused_inception.tools.cli import main

if __name__ == "__main__":
    sys.exit(main())
