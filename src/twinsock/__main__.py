"""``python -m twinsock``: the ``twinsock`` command line (see ``twinsock.cli``)."""

from twinsock.cli import main

raise SystemExit(main())
