"""The settings of the test run: Darkroom's own, read as `make run` reads them (DEBUG=1
unless the environment says otherwise; DEBUG is off by default since issue 22).

pytest-django still runs each test with DEBUG off. Processes the tests start inherit the
environment, DEBUG=1 included; tests of production's settings start theirs with DEBUG=0.
"""

import os

os.environ.setdefault("DEBUG", "1")

from config.settings import *  # noqa: E402, F403
