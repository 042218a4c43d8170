"""``python -m d2fast ...`` runs the command-line interface (the same as ``d2fast ...``)."""
from d2fast.cli import main

raise SystemExit(main())
