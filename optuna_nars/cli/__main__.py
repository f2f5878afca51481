"""``python -m optuna_nars.cli``: the same as the ``optuna-nars`` command."""

import sys

from optuna_nars.cli._main import main

sys.exit(main())
