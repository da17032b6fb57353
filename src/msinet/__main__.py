import sys

from msinet.cli import main

sys.exit(main())
