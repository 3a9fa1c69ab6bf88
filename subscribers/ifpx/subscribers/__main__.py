"""``python -m ifpx.subscribers`` is the ``ifpx`` command."""

import sys

from .cli import main

sys.exit(main())
