import sys

from astrofm.cli import main

sys.exit(main())
