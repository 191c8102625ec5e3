"""`python -m jobq`: the `jobq` command line."""

from jobq.cli import main

main()
