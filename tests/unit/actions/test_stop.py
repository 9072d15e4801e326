"""Graceful stop without a process: nothing is run."""
from guardian.actions.stop import graceful_stop


def test_graceful_stop_without_handle_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    r = graceful_stop(None, ["touch", str(marker)])
    assert not r.ok and r.error
    assert not marker.exists()
