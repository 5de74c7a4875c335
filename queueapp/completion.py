"""``queueapp completion bash|zsh|fish``: a shell's completion of the command, its
subcommands, their options and the values those take, written from the argparse
parser itself, so that it never lists a command or an option the CLI does not have.

    source <(queueapp completion bash)          # or in ~/.bashrc
    source <(queueapp completion zsh)           # zsh, through bashcompinit
    queueapp completion fish | source
"""

from __future__ import annotations

import argparse
import shlex

SHELLS = ("bash", "zsh", "fish")


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps its subcommands here
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _words(sub: argparse.ArgumentParser) -> tuple[list[str], list[str], dict[str, list[str]]]:
    """A subcommand's positional choices (actions such as ls, show), its options, and
    the values each option takes where it has a fixed list."""
    positional: list[str] = []
    options: list[str] = []
    values: dict[str, list[str]] = {}
    for action in sub._actions:
        if action.option_strings:
            options += [o for o in action.option_strings if o.startswith("--")]
            if action.choices:
                for option in action.option_strings:
                    values[option] = [str(c) for c in action.choices]
        elif action.choices:
            positional += [str(c) for c in action.choices]
    return positional, options, values


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    commands = _subcommands(parser)
    if shell == "fish":
        return _fish(commands)
    lines = ["# queueapp's completion (queueapp completion " + shell + ")"]
    if shell == "zsh":
        lines += ["autoload -U +X bashcompinit && bashcompinit"]
    lines += ["_queueapp() {", '  local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"',
              '  if [ "$COMP_CWORD" -eq 1 ]; then',
              f'    COMPREPLY=($(compgen -W {shlex.quote(" ".join(commands))} -- "$cur")); return',
              "  fi", '  local words=""', '  case "${COMP_WORDS[1]}" in']
    for name, sub in commands.items():
        positional, options, values = _words(sub)
        reply = 'COMPREPLY=($(compgen -W {} -- "$cur")); return;;'
        cases = "".join(f"      {shlex.quote(o)}) {reply.format(shlex.quote(' '.join(v)))}\n"
                        for o, v in values.items())
        lines.append(f"    {shlex.quote(name)})")
        if cases:
            lines.append('      case "$prev" in\n' + cases + "      esac")
        lines.append(f'      words={shlex.quote(" ".join(positional + options))};;')
    lines += ["  esac", '  COMPREPLY=($(compgen -W "$words" -- "$cur"))', "}", "complete -F _queueapp queueapp", ""]
    return "\n".join(lines)


def _fish(commands: dict[str, argparse.ArgumentParser]) -> str:
    lines = ["# queueapp's completion (queueapp completion fish)",
             f"complete -c queueapp -f -n __fish_use_subcommand -a {shlex.quote(' '.join(commands))}"]
    for name, sub in commands.items():
        positional, options, values = _words(sub)
        seen = f"'__fish_seen_subcommand_from {name}'"
        if positional:
            lines.append(f"complete -c queueapp -f -n {seen} -a {shlex.quote(' '.join(positional))}")
        for option in options:
            given = values.get(option)
            extra = f" -xa {shlex.quote(' '.join(given))}" if given else ""
            lines.append(f"complete -c queueapp -n {seen} -l {option[2:]}{extra}")
    return "\n".join(lines) + "\n"
