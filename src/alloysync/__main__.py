"""`python -m alloysync` is the same as the `alloysync` console script."""

from alloysync.cli import main

raise SystemExit(main())
