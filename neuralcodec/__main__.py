"""Runs the `ncodec` command line: ``python -m neuralcodec ...``."""

import sys

from neuralcodec.cli import main

sys.exit(main())
