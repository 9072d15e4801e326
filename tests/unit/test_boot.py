"""guardian.boot: the start child's answer is not held for the daemon's life by the frames
below it (boot.run and boot.serve last as long as the daemon)."""
import json
import os
import subprocess
import sys

from tests.support import REPO

# `guardian run` as boot.run starts it, the daemon's run() replaced by a look at its callers'
# frames: what they still hold of the answer (its bytes, the start dict's contents).
_LOOK = r"""
import json, os, sys
from guardian.core import daemon

def look(self):
    held = []
    frame = sys._getframe(1)
    while frame is not None:
        for name, value in frame.f_locals.items():
            if isinstance(value, bytes) and len(value) > 256:
                held.append("%s: %s, %d bytes" % (frame.f_code.co_name, name, len(value)))
            elif isinstance(value, dict) and ("leak_state" in value or "events" in value):  # the start dict
                held.append("%s: %s, keys %s" % (frame.f_code.co_name, name, sorted(value)))
        frame = frame.f_back
    with open(os.environ["LOOK_OUT"], "w") as f:
        json.dump({"held": held, "config_board": self.config.board}, f)
    return 0

daemon.Daemon.run = look
sys.argv[0] = "guardian"
from guardian.cli import main
sys.exit(main())
"""


def test_the_start_answer_is_not_held_below_the_daemon(tmp_path):
    out = str(tmp_path / "look.json")
    env = dict(os.environ, PYTHONPATH=REPO, LOOK_OUT=out)
    proc = subprocess.run([sys.executable, "-c", _LOOK, "run", "--dry-run", "--board", "generic", "--state-file", "",
                           "--events-file", "", "--state-dir", str(tmp_path / "lib"), "--hotplug", "off"],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    with open(out) as f:
        look = json.load(f)
    assert look["config_board"] == "generic"  # the daemon got its config
    assert look["held"] == []
