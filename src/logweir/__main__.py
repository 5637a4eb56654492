import sys

from logweir.cli import main

sys.exit(main())
