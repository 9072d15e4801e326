"""What every command takes from its options: --state-dir over the board's leak state
directory, also after a reload."""
from guardian.commands import cli
from guardian.commands import options


def test_run_state_dir_overrides_the_board_and_survives_a_reload(tmp_path):
    board = tmp_path / "b.toml"
    board.write_text('[board]\nname = "b"\n[leaks]\nstate_dir = "/data/guardian"\n')
    args = cli.build_parser().parse_args(["run", "--config", str(board), "--state-dir", str(tmp_path / "lib")])
    config, _why, again = options.load_config_for(args)
    assert config.leaks.state_dir == str(tmp_path / "lib")
    assert again().leaks.state_dir == str(tmp_path / "lib")
    args.state_dir = None
    assert options.load_config_for(args)[0].leaks.state_dir == "/data/guardian"
