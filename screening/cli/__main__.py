"""`python -m screening.cli`: the same as the `screenctl` console script."""

from screening.cli.main import main

main()
