import sys

from clipseek.cli import main

sys.exit(main())
