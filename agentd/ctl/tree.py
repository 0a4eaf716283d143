"""Walk an argparse parser into its tree of commands.

Shared by ``agentctl completion bash`` and the generated command references
(``agentd docs``), so the completion script, the references and ``--help``
all read the one parser. Standard library only, and imported only by those
two: agentctl's usual commands never pay for it.
"""

from __future__ import annotations

import argparse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

# Words that mark an argument whose value is a file name (completed as one).
FILE_WORDS = frozenset({"PATH", "FILE", "DEST", "DIR"})


class Command:
    """One command of the tree: the root parser, a command or a subcommand."""

    # A plain class: this module belongs to agentctl, which avoids dataclasses.
    def __init__(
        self,
        path: tuple[str, ...],
        parser: argparse.ArgumentParser,
        summary: str,
        children: list[Command],
    ) -> None:
        self.path = path
        self.parser = parser
        self.summary = summary
        self.children = children

    @property
    def name(self) -> str:
        """Return the words that run it, without the program name ("accounts import")."""
        return " ".join(self.path)

    @property
    def example(self) -> str:
        """Return the example of the epilog (after ``Example:``), or ``""``."""
        epilog = self.parser.epilog or ""
        _, found, text = epilog.partition("Example:")
        return " ".join(text.split()) if found else ""

    @property
    def runnable(self) -> bool:
        """Return whether the command does something itself (not only via a subcommand)."""
        return not self.children or self.parser.get_default("run") is not None

    def arguments(self) -> list[argparse.Action]:
        """Return the options and positionals shown in ``--help``, without ``-h``."""
        return [
            a
            for a in self.parser._actions
            if not isinstance(a, (argparse._SubParsersAction, argparse._HelpAction))
            and a.help != argparse.SUPPRESS
        ]

    def all_options(self) -> list[argparse.Action]:
        """Return every optional argument, hidden ones and ``-h`` included."""
        return [a for a in self.parser._actions if a.option_strings]

    def positionals(self) -> list[argparse.Action]:
        """Return the positional arguments, in order (not the subcommand)."""
        return [
            a
            for a in self.parser._actions
            if not a.option_strings and not isinstance(a, argparse._SubParsersAction)
        ]

    def walk(self) -> Iterator[Command]:
        """Yield this command and every command below it, depth first."""
        yield self
        for child in self.children:
            yield from child.walk()


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            parsers = action.choices
            for choice in action._choices_actions:
                out.append((choice.dest, choice.help or "", parsers[choice.dest]))
    return out


def command_tree(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = (), summary: str | None = None
) -> Command:
    """Return the tree of commands under ``parser``."""
    children = [
        command_tree(sub, (*path, name), help_text) for name, help_text, sub in _subcommands(parser)
    ]
    text = summary if summary is not None else (parser.description or "")
    return Command(path, parser, " ".join(text.split()), children)


def takes_value(action: argparse.Action) -> bool:
    """Return whether an option is followed by a value (``--status S``, not ``--json``)."""
    return action.nargs != 0


def metavar(action: argparse.Action) -> str:
    """Return the name shown for an argument's value."""
    if isinstance(action.metavar, str):
        return action.metavar
    if action.choices is not None:
        return "{" + ",".join(str(c) for c in action.choices) + "}"
    return action.dest if not action.option_strings else action.dest.upper()


def is_file(action: argparse.Action) -> bool:
    """Return whether the argument's value is a file name."""
    words = {action.dest.upper(), str(action.metavar or "").upper()}
    return bool(words & FILE_WORDS) or action.dest in ("file", "dest", "config", "socket")


def leading_words(action: argparse.Action) -> tuple[str, ...]:
    """Return the words a positional word list may start with (``rollback check ...``)."""
    return tuple(getattr(action, "verbs", ()))


def invocation(action: argparse.Action) -> str:
    """Return how an argument is written: ``--status {a,b}``, ``-n N``, ``FILE``."""
    if not action.option_strings:
        name = metavar(action)
        if action.nargs == "*":
            return f"[{name} ...]"
        if action.nargs == "?":
            return f"[{name}]"
        if action.nargs == "+":
            return f"{name} [{name} ...]"
        return name
    if not takes_value(action):
        return ", ".join(action.option_strings)
    value = metavar(action)
    return ", ".join(f"{opt} {value}" for opt in action.option_strings)


def usage(parser: argparse.ArgumentParser, width: int = 100) -> str:
    """Return the usage of ``parser`` wrapped at ``width``, the same on every Python version."""
    words = [parser.prog]
    positionals = []
    for action in parser._actions:
        if action.help == argparse.SUPPRESS:
            continue
        if isinstance(action, argparse._SubParsersAction):
            positionals.append(f"{metavar(action)} ...")
        elif not action.option_strings:
            positionals.append(invocation(action))
        else:
            first = action.option_strings[0]
            text = f"{first} {metavar(action)}" if takes_value(action) else first
            words.append(text if action.required else f"[{text}]")
    head, units = f"usage: {words[0]}", words[1:] + positionals
    lines, line = [], head
    for unit in units:
        if len(line) + 1 + len(unit) > width and line.strip() != head.strip():
            lines.append(line)
            line = " " * len(head)
        line += " " + unit
    return "\n".join([*lines, line])
