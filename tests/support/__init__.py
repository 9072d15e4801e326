"""What the tests share that is not a test nor a fixture: helper modules, fixture data, and the
programs the integration tests start as children.

The convention (tests/README.md lists the modules):
- a test file never imports from another test file or from a conftest.py;
- a fixture that several test files use lives in the conftest.py of the narrowest directory
  holding them all;
- a plain function, class or constant that several test files import lives here, in the module
  of its area (fakeproc, fakes, boardfiles, oom_samples, leak_sim, processes, cgroups, tools);
- programs/ holds the scripts the integration tests start as children.

The bench (bench/) imports cgroups and processes outside pytest: they do not import pytest.
"""
import os

# The checkout: what a child process gets as PYTHONPATH to import this tree's guardian.
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
