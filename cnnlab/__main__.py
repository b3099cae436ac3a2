"""``python -m cnnlab ...`` runs the command line (see :mod:`cnnlab.cli.main`)."""
import sys

from .cli.main import main

sys.exit(main())
