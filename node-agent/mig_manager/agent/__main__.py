"""`python -m mig_manager.agent`: the same as the `mig-manager` command."""

import sys

from .main import mig_manager_main

sys.exit(mig_manager_main())
