"""Entry point: `python -m services.payments.reconciliation --help`."""

import sys

from services.payments.reconciliation.cli import main

sys.exit(main())
