"""``python -m agentd.demosite``: serve the demo back-office in the foreground."""

from __future__ import annotations

import sys

from agentd.demosite.cli import main

sys.exit(main())
