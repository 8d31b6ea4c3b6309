"""The documentation stays true: README.md is short, every relative link and #anchor in README.md and
docs/*.md resolves, and every `ghostnet SUBCOMMAND [SUB] --option` in their shell blocks exists in the real
parser. Fast: no TensorFlow, no network."""
import re
import shlex
from pathlib import Path

import pytest

from ghostnet_tf.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
LINK = re.compile(r"(?<!!)\[(?:[^\]\\]|\\.)*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```(\w*)\s*$")


def _without_code(text):
    """The text outside fenced blocks and inline code, so that code samples are not read as links."""
    outside, inside = [], False
    for line in text.splitlines():
        if FENCE.match(line.strip()) or line.strip().startswith("```"):
            inside = not inside
            continue
        if not inside:
            outside.append(re.sub(r"`[^`]*`", "", line))
    return "\n".join(outside)


def _anchor(heading):
    """GitHub's anchor of a heading: lowercase, punctuation except '-' and '_' dropped, spaces -> '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)   # a link in a heading keeps its text
    text = text.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path):
    found, seen, inside = set(), {}, False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip().startswith("```"):
            inside = not inside
            continue
        match = None if inside else re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if match:
            base = _anchor(match.group(2))
            count = seen.get(base, 0)
            found.add(base if count == 0 else f"{base}-{count}")
            seen[base] = count + 1
    return found


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; move detail into docs/"


def _links():
    for path in DOCS:
        for target in LINK.findall(_without_code(path.read_text(encoding="utf-8"))):
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target):   # http:, https:, mailto: are not checked
                yield path, target


@pytest.mark.parametrize("path,target", list(_links()), ids=lambda v: str(v.relative_to(ROOT)) if isinstance(v, Path) else v)
def test_relative_link_resolves(path, target):
    file_part, _, fragment = target.partition("#")
    linked = (path.parent / file_part).resolve() if file_part else path
    assert linked.exists(), f"{path.relative_to(ROOT)}: {target} points to a missing file"
    if fragment:
        assert linked.suffix == ".md", f"{path.relative_to(ROOT)}: {target}: an anchor into a non-Markdown file"
        assert fragment in anchors(linked), (f"{path.relative_to(ROOT)}: {target}: no heading with anchor "
                                             f"#{fragment} in {linked.relative_to(ROOT)}")


def _shell_commands(path):
    """The `ghostnet ...` commands of the sh/bash blocks, continuation lines joined, comments dropped."""
    commands, block, kind = [], None, None
    for line in path.read_text(encoding="utf-8").splitlines():
        fence = FENCE.match(line.strip())
        if fence and block is None:
            block, kind = [], fence.group(1)
            continue
        if line.strip() == "```" and block is not None:
            if kind in ("sh", "bash", "shell", "console"):
                joined = "\n".join(block).replace("\\\n", " ")
                for command in joined.splitlines():
                    commands.extend(_ghostnet_invocations(command))
            block = None
            continue
        if block is not None:
            block.append(line)
    return commands


def _ghostnet_invocations(line):
    try:
        words = shlex.split(line, comments=True)
    except ValueError:
        words = line.split()
    pieces, current = [], None
    for word in words:
        if word in ("&&", "||", "|", ";"):
            current = None
            continue
        if Path(word).name == "ghostnet" and not word.startswith("-"):
            current = []
            pieces.append(current)
        elif current is not None:
            current.append(word)
    return pieces


def _subparsers(parser):
    actions = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    return actions[0].choices if actions else {}


COMMANDS = [(path, words) for path in DOCS for words in _shell_commands(path)]


def test_docs_show_ghostnet_commands():
    assert len(COMMANDS) > 20


@pytest.mark.parametrize("path,words", COMMANDS,
                         ids=lambda v: str(v.relative_to(ROOT)) if isinstance(v, Path) else " ".join(v)[:60])
def test_ghostnet_command_exists(path, words):
    parser = build_parser("ghostnet")
    where = f"{path.relative_to(ROOT)}: ghostnet {' '.join(words)}"
    if not words or words[0].startswith("-"):
        assert all(w in parser._option_string_actions for w in words if w.startswith("-")), where
        return
    names = []
    for word in words:
        choices = _subparsers(parser)
        if not choices or word.startswith("-"):
            break
        assert word in choices, f"{where}: no subcommand {' '.join([*names, word])!r}"
        parser = choices[word]
        names.append(word)
    assert not _subparsers(parser), f"{where}: {' '.join(names)} needs a subcommand"
    for word in words[len(names):]:
        if word.startswith("--"):
            option = word.split("=", 1)[0]
            assert option in parser._option_string_actions, f"{where}: ghostnet {' '.join(names)} has no {option}"
