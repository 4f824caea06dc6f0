import sys

from lmguide.cli import main

sys.exit(main())
