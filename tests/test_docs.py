"""The documentation stays true: README.md is short, every relative link and #anchor in README.md and
docs/*.md resolves, every `ghostnet SUBCOMMAND [SUB] --option` in their shell blocks exists in the real
parser, and every command of their fenced shell blocks and every fenced Python block either runs as written
(in doc order, in one temporary directory, offline, seeded) or is listed in tests/doc_commands.py with why
not. Only the running needs TensorFlow; it is the slow part. No network."""
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import pytest
from doc_commands import NOT_RUN, RUN

from ghostnet_tf.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
LINK = re.compile(r"(?<!!)\[(?:[^\]\\]|\\.)*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```(\w*)\s*$")
SHELL_FENCES = ("sh", "bash", "shell", "console")
PYTHON_FENCES = ("python", "py")
FIXTURES = ROOT / "tests" / "fixtures"
RUN_TIMEOUT = 600  # s per command; the slowest one run (the CIFAR-10 GhostNet's int8 conversion) takes 40-50 s
# What a run Python block starts with: the seeds of tests/conftest.py's seed_everything (Python, NumPy, Keras/TF).
SEEDED = "import keras\nkeras.utils.set_random_seed(0)\n"


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


class Snippet(NamedTuple):
    """One command of a fenced shell block, or one fenced Python block."""
    path: Path
    line: int  # where its block starts
    kind: str  # "shell" or "python"
    key: str  # how tests/doc_commands.py names it: the command itself, or the block's first line past the imports
    code: str  # what runs

    def where(self):
        return f"{self.path.relative_to(ROOT)}:{self.line}: {self.key}"


def _without_comment(line):
    """`line` without its `#` comment (a `#` that starts a word outside quotes), blanks outside quotes collapsed:
    the form in which tests/doc_commands.py names commands, however the docs align them."""
    out, quote, blank = [], None, False
    for char in line:
        if quote:
            quote = None if char == quote else quote
        elif char.isspace():
            blank = True
            continue
        elif char == "#" and (blank or not out):
            break
        elif char in "'\"":
            quote = char
        if blank and out:
            out.append(" ")
        blank = False
        out.append(char)
    return "".join(out)


def _fenced_blocks(path):
    """(language, first line number, lines) of every fenced block."""
    block = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fence = FENCE.match(line.strip())
        if block is None and fence:
            block = (fence.group(1), number + 1, [])
        elif block is not None and line.strip() == "```":
            yield block
            block = None
        elif block is not None:
            block[2].append(line)


def _shell_lines(language, lines):
    """The commands of a shell block: continuation lines joined, `$ ` prompts and comments dropped; in a console
    block only the prompted lines are commands (the others are output)."""
    for line in "\n".join(lines).replace("\\\n", " ").splitlines():
        line = line.strip()
        if line.startswith("$ "):
            line = line[2:]
        elif language == "console":
            continue
        if command := _without_comment(line):
            yield command


def _python_key(lines):
    """A Python block's name: its first line that is not blank, a comment or an import."""
    for line in lines:
        code = _without_comment(line)
        if code and not code.startswith(("import ", "from ")):
            return code
    return _without_comment(lines[0])


def snippets(path):
    for language, line, lines in _fenced_blocks(path):
        if language in SHELL_FENCES:
            yield from (Snippet(path, line, "shell", command, command) for command in _shell_lines(language, lines))
        elif language in PYTHON_FENCES and lines:
            yield Snippet(path, line, "python", _python_key(lines), "\n".join(lines))


SNIPPETS = [snippet for path in DOCS for snippet in snippets(path)]


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


COMMANDS = [(s.path, words) for s in SNIPPETS if s.kind == "shell" for words in _ghostnet_invocations(s.code)]


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


def test_every_doc_command_is_run_or_says_why_not():
    listed = [key for keys in NOT_RUN.values() for key in keys]
    shown = {snippet.key for snippet in SNIPPETS}
    unclassified = sorted({s.where() for s in SNIPPETS if s.key not in RUN and s.key not in listed})
    assert not unclassified, ("classify each in tests/doc_commands.py (RUN, or NOT_RUN with why not):\n"
                              + "\n".join(unclassified))
    gone = sorted(set(RUN).union(listed) - shown)
    assert not gone, "no longer in the docs; drop from tests/doc_commands.py:\n" + "\n".join(gone)
    entries = [*RUN, *listed]
    twice = sorted({key for key in entries if entries.count(key) > 1})
    assert not twice, "listed more than once in tests/doc_commands.py:\n" + "\n".join(twice)


def _first_of_each(kept):
    """The snippets of `kept`, each command or block once (the first time the docs show it), in doc order."""
    seen = {}
    for snippet in SNIPPETS:
        if snippet.key in kept:
            seen.setdefault(snippet.key, snippet)
    return list(seen.values())


@pytest.fixture(scope="module")
def doc_run(tmp_path_factory):
    """``doc_run(snippet)``: (exit status, output, seconds) of a RUN snippet. The snippets run in doc order in one
    directory, each once, up to the one asked for, since later ones read what earlier ones wrote (`ghostnet
    convert` the .keras of `ghostnet port`); any order of the tests gives the same runs. No network: the proxy is a
    closed port and the Keras cache is new."""
    workdir = tmp_path_factory.mktemp("docs")
    (workdir / "tests").mkdir()
    (workdir / "tests" / "fixtures").symlink_to(FIXTURES)
    shutil.copyfile(FIXTURES / "n02006656_spoonbill.JPEG", workdir / "photo.jpg")
    closed = "http://127.0.0.1:9"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONHASHSEED": "0", "KERAS_HOME": str(workdir / "keras"),
           "http_proxy": closed, "https_proxy": closed, "HTTP_PROXY": closed, "HTTPS_PROXY": closed}
    pending, results = iter(_first_of_each(RUN)), {}

    def run(snippet):
        while snippet.key not in results:
            step = next(pending)
            argv = ["bash", "-c", step.code] if step.kind == "shell" else [sys.executable, "-c", SEEDED + step.code]
            start = time.monotonic()
            done = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
            results[step.key] = done.returncode, done.stdout + done.stderr, time.monotonic() - start
        return results[snippet.key]
    return run


@pytest.mark.slow
@pytest.mark.parametrize("snippet", _first_of_each(RUN), ids=lambda s: s.key[:60])
def test_doc_command_runs(snippet, doc_run):
    code, output, seconds = doc_run(snippet)
    print(f"{snippet.where()}: {seconds:.1f} s")
    assert code == 0, f"{snippet.where()}: exit status {code} after {seconds:.0f} s\n{output[-3000:]}"


@pytest.mark.parametrize("argv", [["--help"], ["--version"]])
def test_ghostnet_help_and_version_run(argv):
    """README's `ghostnet --help` and `ghostnet --version`, as processes: the installed command starts."""
    ghostnet = Path(sys.executable).parent / "ghostnet"
    done = subprocess.run([str(ghostnet), *argv], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout, done.stderr


def _subcommand_paths(parser, names=()):
    for name, sub in _subparsers(parser).items():
        yield (*names, name)
        yield from _subcommand_paths(sub, (*names, name))


@pytest.mark.parametrize("names", list(_subcommand_paths(build_parser("ghostnet"))), ids=" ".join)
def test_every_subcommand_prints_its_help(names, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser("ghostnet").parse_args([*names, "--help"])
    assert exit_info.value.code == 0 and f"ghostnet {' '.join(names)}" in capsys.readouterr().out
