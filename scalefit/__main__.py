"""``python -m scalefit``: the same as the ``scalefit`` command."""

import sys

from scalefit.cli.main import main

sys.exit(main())
