"""guardian.config as plain data (to_plain/from_plain): what the loader's child sends the daemon."""
import marshal

import pytest

from guardian.config import (Board, BoardMatch, Config, Critical, LeakWatch, Line, LowPriority, Match, Thresholds,
                             from_plain, to_plain)


def test_a_full_config_comes_back_equal_through_marshal():
    config = Config(
        thresholds=Thresholds(reclaim=Line(20.0, 40.0), psi_some_reclaim=None),
        critical=(Critical("db", Match(comm="db", uid=0), leak=LeakWatch(command=("x", "-y"), max_rss_mib=3.5)),),
        low_priority=(LowPriority("ui", Match(exe="/ui"), stop=("kill", "ui")),),
        sysctl={"vm.swappiness": "10", "__class__": "Config"},  # a key is never taken for a tag
        board_info=Board(name="b", match=(BoardMatch(dmi_board_name="x"),)), files=("a", "b"))
    back = from_plain(marshal.loads(marshal.dumps(to_plain(config))))
    assert back == config and isinstance(back.critical, tuple) and back.sysctl["__class__"] == "Config"


@pytest.mark.parametrize("plain", [
    {"__class__": "os"},
    {"__class__": "Line", "percent": 1.0, "min_mib": 2.0, "bogus": 1},
    {"__class__": "Line", "percent": [1.0], "min_mib": 2.0},
    b"bytes",
])
def test_what_to_plain_cannot_have_made_is_refused(plain):
    with pytest.raises(ValueError):
        from_plain(plain)
