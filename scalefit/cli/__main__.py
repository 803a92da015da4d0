"""``python -m scalefit.cli``: the same as the ``scalefit`` command."""

import sys

from scalefit.cli.main import main

sys.exit(main())
