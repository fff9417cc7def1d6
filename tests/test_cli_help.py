"""Every verb's --help prints (argparse formats help strings with %, so a stray % in a config doc broke it)."""
import pytest

from rlhfkit.cli import main

VERBS = [["--help"], ["data", "check", "--help"], ["model", "show", "--help"], ["sft", "--help"], ["dpo", "--help"],
         ["rm", "--help"], ["rm", "train", "--help"], ["rm", "eval", "--help"], ["rm", "score", "--help"],
         ["ppo", "--help"]]


@pytest.mark.parametrize("argv", VERBS, ids=lambda a: " ".join(a))
def test_help_prints(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 0
    assert "usage: rlhfkit" in capsys.readouterr().out
