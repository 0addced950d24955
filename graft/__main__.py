"""`python -m graft` is the same as the `graft` command."""
from graft.pipeline.cli import main

raise SystemExit(main())
