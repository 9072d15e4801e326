"""`guardian status` on the running daemon's state file: one of the wrong shape is named in
one line, a good one is taken."""
import json
import os

import pytest

from guardian.commands import status


@pytest.mark.parametrize("text,why", [
    ('{"pid": %(pid)d}', "field 'wait_mode' missing"),
    ('[%(pid)d]', "not a JSON object"),
    ('{"pid": "%(pid)d", "wait_mode": "poll", "rung": "normal"}', "field 'pid' is not a valid int"),
    ('{"pid": 1e400, "wait_mode": "poll", "rung": "normal"}', "field 'pid' is not a valid int"),
    ('{"pid": 99999999999999999999, "wait_mode": "poll", "rung": "normal"}', "field 'pid' is not a valid int"),
    ('{"pid": 0, "wait_mode": "poll", "rung": "normal"}', "field 'pid' is not a valid int"),
    ('{"pid": %(pid)d, "wait_mode": "poll", "rung": "normal", "kills": "3"}', "field 'kills' is not a valid int"),
    ('{"pid": %(pid)d, "wait_mode": "poll", "rung": ["normal"]}', "field 'rung' is not a valid str"),
    ('{"pid": NaN}', "not JSON (NaN is not allowed)"),
    ('{"pid": ', "not JSON ("),
])
def test_status_names_a_wrong_state_file_in_one_line(tmp_path, text, why):
    path = tmp_path / "state.json"
    path.write_text(text % {"pid": os.getpid()})
    problems = []
    assert status._daemon_state(str(path), problems) is None
    assert problems == ["ignored %s: %s" % (path, problems[0].split(": ", 1)[1])] and why in problems[0], problems


def test_status_takes_a_good_state_file(tmp_path):
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"pid": os.getpid(), "wait_mode": "poll", "rung": "normal", "kills": 2}))
    problems = []
    assert status._daemon_state(str(path), problems)["kills"] == 2 and problems == []
    assert status._daemon_state(str(tmp_path / "none.json"), problems) is None and problems == []
