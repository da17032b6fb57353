"""`python -m msinet.cli`."""

import sys

from msinet.cli import main

sys.exit(main())
