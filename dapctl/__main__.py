"""``python -m dapctl``: the same entry point as the ``dapctl`` console script."""

from dapctl.cli import main

raise SystemExit(main())
