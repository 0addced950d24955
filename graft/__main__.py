"""`python -m graft` is the same as the `graft` command."""
from graft.cli import main

raise SystemExit(main())
