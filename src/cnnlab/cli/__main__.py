"""python -m cnnlab.cli"""

from . import main

main()
