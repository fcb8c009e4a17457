"""`python -m shardbroker` runs the command-line interface."""

from shardbroker.cli import main

main()
