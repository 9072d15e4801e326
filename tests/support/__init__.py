"""What the tests share that is not a test: helper modules, fixture data and the programs the
integration tests run as children.

The convention (tests/README.md says more):
- a test file never imports from another test file or from a conftest.py;
- a fixture that several test files use lives in the conftest.py of the narrowest directory
  holding them all;
- a plain function, class or constant that several test files import lives here, in the module
  of its area: fakeproc (fake /proc and /sys trees), fakes (stand-ins handed to the guardian's
  parts: an event sink, a clock, a process-table record), boardfiles (board config files
  written for a test), oom_samples (kernel OOM reports), leak_sim (synthetic leak series),
  processes (real child processes) and cgroups (real memory cgroups);
- programs/ holds the scripts the integration tests start as child processes.

Nothing here imports pytest: the bench (bench/) imports processes and cgroups too.
"""
import os

# The checkout: what a child process gets as PYTHONPATH to import this tree's guardian.
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
