"""``python -m analysis.report``: the command line of :func:`analysis.report.main`."""

import sys

from records.cli import run_cli

from . import main

sys.exit(run_cli(main))
