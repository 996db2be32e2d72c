"""`python -m laborlm` is the same as the `laborlm` console command."""

from laborlm.cli import main

raise SystemExit(main())
