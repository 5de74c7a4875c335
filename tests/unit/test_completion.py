"""The shells' completion, written from the CLI's own parser: bash completes what the
CLI has, nothing it has not."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from queueapp.cli import build_parser
from queueapp.completion import script


def complete(line: str) -> list[str]:
    """What bash's completion offers for the words of ``line`` (the last one being typed)."""
    words = line.split(" ")
    program = (script(build_parser(), "bash")
               + f"COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
               + '_queueapp; printf "%s\\n" "${COMPREPLY[@]}"\n')
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return sorted(filter(None, done.stdout.splitlines()))


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completes_commands_actions_options_and_their_values():
    assert complete("queueapp fa") == ["failures"]
    assert "audit" in complete("queueapp ") and "completion" in complete("queueapp ")
    assert complete("queueapp jobs d") == ["delete"]
    assert complete("queueapp jobs ls --li") == ["--limit"]
    assert complete("queueapp serve --durability ") == ["full", "normal"]
    assert complete("queueapp failures ")[:3] == ["--cacert", "--dry-run", "--help"]
    assert complete("queueapp nosuch ") == []


def test_every_shell_gets_a_script_naming_every_command():
    parser = build_parser()
    for shell in ("bash", "zsh", "fish"):
        text = script(parser, shell)
        assert all(command in text for command in ("serve", "jobs", "failures", "groups", "audit")), shell
    assert script(parser, "zsh").startswith("# queueapp's completion (queueapp completion zsh)\nautoload")
