"""`python -m lab` is the same as the `lab` command."""

from lab.commands import main

raise SystemExit(main())
