"""python -m cnnlab: the command line."""

from .cli import main

main()
