"""`recaffe --version` and every command's `--help` with each flag's default."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

import recaffe
from recaffe.cli.__main__ import COMMANDS, main


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"recaffe version {recaffe.__version__}"
    assert main(["-version"]) == 0
    assert capsys.readouterr().out.strip() == f"recaffe version {recaffe.__version__}"


def test_version_matches_installed_metadata():
    from importlib.metadata import version

    assert version("recaffe") == recaffe.__version__


def test_version_from_the_command_line():
    r = subprocess.run([sys.executable, "-m", "recaffe", "--version"],
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0 and r.stdout.startswith("recaffe version ")


def _option_blocks(text: str) -> dict[str, str]:
    """Flag -> its help text, from argparse's options section."""
    blocks: dict[str, str] = {}
    current = None
    section = text.split("options:", 1)[1]
    for line in section.splitlines():
        m = re.match(r"^  (-[\w-]+)", line)
        if m:
            current = m.group(1)
            blocks[current] = line
        elif current and line.startswith("    "):
            blocks[current] += " " + line.strip()
        else:
            current = None
    return blocks


@pytest.mark.parametrize("command", sorted(set(COMMANDS) - {"pycaffe"}))
def test_help_lists_every_flag_with_default(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    blocks = _option_blocks(capsys.readouterr().out)
    flags = [f for f in blocks if f not in ("-h", "--help")]
    assert flags, f"{command}: no flags listed"
    # A required flag says so; every other one names its default.
    missing = [f for f in flags
               if not re.search(r"default|\(required\)", blocks[f])]
    assert not missing, f"{command}: flags without a default in --help: {missing}"
