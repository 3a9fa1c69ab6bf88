"""Shell completion for ``ifpx``, written from the parser itself (so it never lags it).

``ifpx completion bash`` prints a bash completion script (``source <(ifpx completion
bash)``, or save it under ``/etc/bash_completion.d/ifpx``); zsh runs it after
``autoload -U bashcompinit && bashcompinit``.
"""

from __future__ import annotations

import argparse
import shlex

from .clibase import kind_words

Tree = dict[str, tuple[list[str], "Tree"]]
"""Subcommand -> (its options, its own subcommands)."""


OPTION_VALUES = {"--kind": kind_words()}
"""Values of options that take a parsed value rather than fixed choices."""


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return sorted(opt for action in parser._actions for opt in action.option_strings)


def _positional_choices(parser: argparse.ArgumentParser) -> list[str]:
    """The fixed values a positional argument takes (``recording verify|show``)."""
    return sorted(
        str(choice)
        for action in parser._actions
        if not action.option_strings
        and action.choices
        and not isinstance(action, argparse._SubParsersAction)
        for choice in action.choices
    )


INTERFACE_ARGS = {"proxy", "name"}
"""Positional arguments that name a Linux interface: completed from /sys/class/net."""


def _takes_interface(parser: argparse.ArgumentParser) -> bool:
    return any(not a.option_strings and a.dest in INTERFACE_ARGS for a in parser._actions)


def _option_values(parser: argparse.ArgumentParser, values: dict[str, list[str]]) -> None:
    """Option -> the values it takes, for every option with a fixed set, all the way down."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _option_values(sub, values)
        elif action.option_strings and action.choices:
            for opt in action.option_strings:
                values[opt] = sorted(str(c) for c in action.choices)


def tree(parser: argparse.ArgumentParser) -> Tree:
    """The subcommands of ``parser``, with their options, all the way down."""
    return {name: (_options(sub), tree(sub)) for name, sub in _subparsers(parser).items()}


def _cases(node: Tree, path: str) -> list[str]:
    lines = []
    for name, (options, children) in sorted(node.items()):
        key = f"{path} {name}".strip()
        words = sorted(children) + options
        lines.append(f"        {shlex.quote(key)}) words={shlex.quote(' '.join(words))} ;;")
        lines += _cases(children, key)
    return lines


def _subcommand_cases(parser: argparse.ArgumentParser, path: str) -> list[str]:
    """Per subcommand: its positional values, and interface names where one is named."""
    lines = []
    for name, sub in sorted(_subparsers(parser).items()):
        key = f"{path} {name}".strip()
        fixed = _positional_choices(sub)
        extra = " ".join(fixed)
        if _takes_interface(sub):
            extra += " $(ls /sys/class/net 2>/dev/null)"
        if extra.strip():
            lines.append(f'        {shlex.quote(key)}) words="$words {extra.strip()}" ;;')
        lines += _subcommand_cases(sub, key)
    return lines


def bash(parser: argparse.ArgumentParser) -> str:
    """A bash completion function for ``parser`` (subcommands, then their options)."""
    top = tree(parser)
    root_words = " ".join(sorted(top) + _options(parser))
    cases = "\n".join(_cases(top, ""))
    positional = "\n".join(_subcommand_cases(parser, ""))
    values = dict(OPTION_VALUES)
    _option_values(parser, values)
    value_cases = "\n".join(
        f"        {shlex.quote(opt)}) COMPREPLY=($(compgen -W {shlex.quote(' '.join(vs))} -- "
        f'"$cur")); return ;;'
        for opt, vs in sorted(values.items())
    )
    return f"""# bash completion for ifpx (made by `ifpx completion bash`)
_ifpx() {{
    local cur prev path word i
    cur=${{COMP_WORDS[COMP_CWORD]}}
    prev=${{COMP_WORDS[COMP_CWORD-1]}}
    # An option's value: the values it takes.
    case "$prev" in
{value_cases}
    esac
    path=""
    # The subcommands typed so far; options, their values and arguments are passed over.
    for ((i = 1; i < COMP_CWORD; i++)); do
        word=${{COMP_WORDS[i]}}
        case "$word" in -*) continue ;; esac
        case "${{path:+$path }}$word" in
{_known(top, "")}
            *) ;;
        esac
    done
    local words={shlex.quote(root_words)}
    case "$path" in
{cases}
    esac
    case "$path" in
{positional}
    esac
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
}}
complete -o default -F _ifpx ifpx
"""


def _known(node: Tree, path: str) -> str:
    keys = []

    def walk(n: Tree, p: str) -> None:
        for name, (_options, children) in n.items():
            key = f"{p} {name}".strip()
            keys.append(key)
            walk(children, key)

    walk(node, path)
    alternatives = "|".join(shlex.quote(k) for k in sorted(keys))
    return f'            {alternatives}) path="${{path:+$path }}$word" ;;'
