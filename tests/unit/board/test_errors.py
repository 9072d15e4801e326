"""ConfigError: a ValueError whose parts (file, key, value, line, expected) are kept."""
from tests.support.boardfiles import error_of, write


def test_error_is_a_value_error_with_parts(tmp_path):
    path = write(tmp_path, "b.toml", '[[critical]]\nname = "a"\nmatch = {comm = "a"}\noom_score_adj = 2000\n')
    e = error_of(path)
    assert isinstance(e, ValueError)
    assert (e.file, e.key, e.value, e.line) == (path, "critical[0].oom_score_adj", 2000, 4)
    assert e.expected == "expected an integer from -1000 to 1000"
