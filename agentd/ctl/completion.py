"""``agentctl completion bash``: a bash completion script made from the parser.

The script is generated at run time from :func:`agentd.ctl.main.build_parser`,
so it knows every command, subcommand, option and choice of the agentctl that
prints it, and needs no Python when a user presses Tab. It is plain data (one
``case`` branch per command) plus a small walker written once below.

Imported only by the ``completion`` command: agentctl's other commands never
load it.
"""

from __future__ import annotations

import argparse
import shlex

from agentd.ctl.tree import Command, command_tree, is_file, leading_words, takes_value

SHELLS = ("bash",)

# The fixed part: find the command the words before the cursor name, then
# offer what fits the cursor: an option's value, an option, a subcommand or
# a positional argument. Works with bash's default COMP_WORDBREAKS, which
# splits ``--status=pen`` into ``--status``, ``=``, ``pen``.
_WALKER = r"""
_agentctl() {
    local cur="${COMP_WORDS[COMP_CWORD]}" path="" w opt="" i=1 npos=0
    local subs opts vopts pos rootv
    COMPREPLY=()
    _agentctl_node ""
    rootv=$vopts
    while (( i < COMP_CWORD )); do
        w=${COMP_WORDS[i]}
        if [[ $w == "=" ]]; then
            (( i += 2 ))          # "=" and the value after it
            continue
        elif [[ $w == -* ]]; then
            if [[ " $vopts $rootv " == *" $w "* && ${COMP_WORDS[i+1]} != "=" ]]; then
                (( i += 1 ))      # its value
            fi
        elif [[ " $subs " == *" $w "* ]]; then
            path=${path:+$path }$w
            _agentctl_node "$path"
            npos=0
        else
            (( npos += 1 ))
        fi
        (( i += 1 ))
    done
    if [[ $cur == "=" ]]; then
        opt=${COMP_WORDS[COMP_CWORD-1]}
        cur=""
    elif (( COMP_CWORD >= 2 )) && [[ ${COMP_WORDS[COMP_CWORD-1]} == "=" ]]; then
        opt=${COMP_WORDS[COMP_CWORD-2]}
    elif (( COMP_CWORD >= 2 )) && [[ " $vopts $rootv " == *" ${COMP_WORDS[COMP_CWORD-1]} "* ]]; then
        opt=${COMP_WORDS[COMP_CWORD-1]}
    fi
    if [[ -n $opt ]]; then
        _agentctl_words "$(_agentctl_value "$path" "$opt")" "$cur"
    elif [[ $cur == -* ]]; then
        _agentctl_words "$opts" "$cur"
    elif [[ -n $subs ]]; then
        _agentctl_words "$subs" "$cur"
    else
        local kinds=($pos) kind=""
        if (( npos < ${#kinds[@]} )); then
            kind=${kinds[npos]}
        elif (( ${#kinds[@]} > 0 )) && [[ ${kinds[-1]} == *"..." ]]; then
            kind=${kinds[-1]}
        fi
        kind=${kind%...}
        if [[ $kind == "@file" ]]; then
            _agentctl_words "@file" "$cur"
        elif [[ $kind == w:* ]]; then
            _agentctl_words "${kind#w:}" "$cur"
        fi
    fi
}

_agentctl_words() {
    # $1: words to offer (comma- or space-separated), or @file; $2: the word so far.
    if [[ $1 == "@file" ]]; then
        compopt -o filenames 2>/dev/null
        mapfile -t COMPREPLY < <(compgen -f -- "$2")
    elif [[ -n $1 ]]; then
        mapfile -t COMPREPLY < <(compgen -W "${1//,/ }" -- "$2")
    fi
}

complete -F _agentctl agentctl
"""


def _words(values: list[str]) -> str:
    return shlex.quote(" ".join(values))


def _value_kind(action: argparse.Action) -> str | None:
    if action.choices is not None:
        return ",".join(str(c) for c in action.choices)
    if is_file(action):
        return "@file"
    return None


def _positional_kind(action: argparse.Action) -> str:
    if action.choices is not None:
        kind = "w:" + ",".join(str(c) for c in action.choices)
    elif is_file(action):
        kind = "@file"
    else:
        kind = "-"
    return kind + ("..." if action.nargs in ("*", "+", argparse.REMAINDER) else "")


def _positional_kinds(action: argparse.Action) -> list[str]:
    # A word list that starts with a verb (rollback check TOKEN): the verbs
    # first, then whatever follows (not completed).
    verbs = leading_words(action)
    if verbs and action.nargs in ("*", "+"):
        return ["w:" + ",".join(verbs), "-..."]
    return [_positional_kind(action)]


def _node_branch(cmd: Command) -> str:
    shown = [
        opt
        for a in cmd.all_options()
        if a.help != argparse.SUPPRESS or isinstance(a, argparse._HelpAction)
        for opt in a.option_strings
    ]
    valued = [opt for a in cmd.all_options() if takes_value(a) for opt in a.option_strings]
    kinds = [kind for a in cmd.positionals() for kind in _positional_kinds(a)]
    label = shlex.quote(cmd.name) if cmd.name else '""'
    return (
        f"    {label})\n"
        f"        subs={_words([c.path[-1] for c in cmd.children])}\n"
        f"        opts={_words(shown)}\n"
        f"        vopts={_words(valued)}\n"
        f"        pos={_words(kinds)} ;;\n"
    )


def _value_branches(cmd: Command) -> list[str]:
    out = []
    for action in cmd.all_options():
        kind = _value_kind(action) if takes_value(action) else None
        if kind is None:
            continue
        for opt in action.option_strings:
            key = shlex.quote(f"{cmd.name}|{opt}")
            out.append(f"    {key}) echo {shlex.quote(kind)} ;;\n")
    return out


def bash_script(parser: argparse.ArgumentParser) -> str:
    """Return the bash completion script for ``parser`` (agentctl's)."""
    commands = list(command_tree(parser).walk())
    parts = [
        "# bash completion for agentctl, made from its parser by `agentctl completion bash`.\n",
        "# Install: agentctl completion bash | sudo tee /etc/bash_completion.d/agentctl\n",
        "# or, for one user: agentctl completion bash > ~/.local/share/bash-completion/"
        "completions/agentctl\n",
        "\n_agentctl_node() {\n    # $1: a command path; sets subs, opts, vopts and pos.\n",
        '    subs="" opts="" vopts="" pos=""\n    case "$1" in\n',
        *(_node_branch(cmd) for cmd in commands),
        "    esac\n}\n",
        "\n_agentctl_value() {\n",
        "    # $1: a command path, $2: an option; prints its choices or @file.\n",
        '    case "$1|$2" in\n',
        *(line for cmd in commands for line in _value_branches(cmd)),
        # A root option may appear after the command (argparse allows --json there too).
        *(
            f"    *{shlex.quote('|' + opt)}) echo {shlex.quote(kind)} ;;\n"
            for action in commands[0].all_options()
            if takes_value(action) and (kind := _value_kind(action)) is not None
            for opt in action.option_strings
        ),
        "    esac\n}\n",
        _WALKER,
    ]
    return "".join(parts)


def run(shell: str) -> int:
    """Print the completion script for ``shell``; return the exit status."""
    from agentd.ctl.main import build_parser

    if shell not in SHELLS:  # argparse's choices already refuse others
        return 2
    print(bash_script(build_parser()), end="")
    return 0
