"""A board file's TOML (toml.py): syntax errors at their line and column, nesting deep
enough to exhaust the stack refused, keys located back to their line."""
import textwrap

import pytest

from guardian.board.errors import ConfigError
from guardian.board.load import load_file
from guardian.board.toml import locate
from tests.support.boardfiles import error_of, write


@pytest.mark.parametrize("body, line, column", [
    ('[board]\nname = "a"\n\n[thresholds\n', 4, 12),
    # (Not a trailing comma: TOML 1.1, which tomli 2.5 reads on Python < 3.11, allows it.)
    ('[[critical]]\nname = "a"\nmatch = {comm = "a" cmdline = "b"}\n', 3, 21),
    ('[wait]\nuse_psi = yes\n', 2, 11),
    ('[wait]\nuse_psi = true\nuse_psi = false\n', 3, 16),
])
def test_syntax_errors_keep_line_and_column(tmp_path, body, line, column):
    path = write(tmp_path, "b.toml", body)
    e = error_of(path)
    assert (e.line, e.column) == (line, column), str(e)
    assert str(e).startswith("%s:%d:%d: TOML syntax error: " % (path, line, column))
    assert "(at line" not in str(e)


def test_locate_handles_multiline_arrays_and_quoted_keys():
    text = textwrap.dedent('''
        [board]
        include = [
          "a",   # x = 1
          "b",
        ]
        [sysctl]
        "vm.swappiness" = 1
        [[critical]]
        name = "a"
        [[critical]]
        name = "b"
        [critical.match]
        comm = "b"
        ''').lstrip("\n")
    assert locate(text, ("board", "include")) == 2
    assert locate(text, ("sysctl", "vm.swappiness")) == 7
    assert locate(text, ("critical", 1, "name")) == 11
    assert locate(text, ("critical", 1, "match", "comm")) == 13
    assert locate(text, ("critical", 0, "oom_score_adj")) == 8


def test_nesting_that_would_exhaust_the_stack_is_a_clear_error(confdir):
    for prefix in ('[board]\ninclude = ', 'critical = ', '[thresholds]\nkill = '):
        path = write(confdir, "deep.toml", prefix + "[" * 400 + "]" * 400 + "\n")
        with pytest.raises(ConfigError) as err:
            load_file(path, boards={})
        assert "nested deeper than" in str(err.value)
