"""``python -m sre_agent`` is the same as the ``sre-agent`` command."""

import sys

from sre_agent.cli import main

sys.exit(main())
