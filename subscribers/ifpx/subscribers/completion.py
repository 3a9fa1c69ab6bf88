"""Shell completion for ``ifpx``, written from the parser itself (so it never lags it).

``ifpx completion bash`` prints a bash completion script (``source <(ifpx completion
bash)``, or save it under ``/etc/bash_completion.d/ifpx``); zsh runs it after
``autoload -U bashcompinit && bashcompinit``.
"""

from __future__ import annotations

import argparse
import shlex

Tree = dict[str, tuple[list[str], "Tree"]]
"""Subcommand -> (its options, its own subcommands)."""


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return sorted(opt for action in parser._actions for opt in action.option_strings)


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


def bash(parser: argparse.ArgumentParser) -> str:
    """A bash completion function for ``parser`` (subcommands, then their options)."""
    top = tree(parser)
    root_words = " ".join(sorted(top) + _options(parser))
    cases = "\n".join(_cases(top, ""))
    return f"""# bash completion for ifpx (made by `ifpx completion bash`)
_ifpx() {{
    local cur path word i
    cur=${{COMP_WORDS[COMP_CWORD]}}
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
