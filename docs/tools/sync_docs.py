"""Rewrite the generated parts of README.md and docs/ from the files they come from.

Two kinds of generated text, each behind an HTML comment that Markdown does not show:

* A snippet: ``<!-- snippet: PATH -->`` right before a fenced code block makes the block
  the whole file PATH (relative to the repository root); ``<!-- snippet: PATH
  from="TEXT" to="TEXT" -->`` takes the lines from the first one containing the first
  TEXT to the next one containing the second, so a page can show part of a file without
  markers in it. The files are ones the tests compile and run, so the docs show code that
  works (tests/python/test_docs.py checks both).
* The fault catalog: the lines between ``<!-- generated: fault catalog -->`` and
  ``<!-- end generated -->`` are the table made from ``CATALOG`` in
  tests/python/test_fault_catalog.py.

``python docs/tools/sync_docs.py`` rewrites the files; ``--check`` only reports what
differs (exit status 1), as the tests do.
"""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
PAGES = [
    "README.md",
    "tests/README.md",
    "examples/first/README.md",
    *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md")),
]
LANGUAGE = {".f90": "fortran", ".c": "c", ".h": "c", ".py": "python", ".sh": "bash", ".cpp": "cpp"}

SNIPPET = re.compile(
    r'(?P<marker><!-- snippet: (?P<path>\S+)(?: from="(?P<start>[^"]*)" to="(?P<stop>[^"]*)")? -->\n)'
    r"(?P<fence>```[^\n]*\n)(?P<body>.*?)```\n",
    re.DOTALL,
)
GENERATED = re.compile(r"(<!-- generated: fault catalog -->\n)(.*?)(<!-- end generated -->)", re.DOTALL)


class SnippetError(Exception):
    """A snippet names a file or a region that is not there."""


def snippets(text):
    """The snippet markers of a page: (path, start, stop) for each, in order."""
    return [(m["path"], m["start"], m["stop"]) for m in SNIPPET.finditer(text)]


def snippet_text(path, start=None, stop=None):
    """The lines a snippet shows: the whole file, or from the line holding ``start`` to the next
    line holding ``stop``."""
    source = ROOT / path
    if not source.is_file():
        raise SnippetError(f"snippet file {path} does not exist")
    text = source.read_text()
    if start is None:
        return text if text.endswith("\n") else text + "\n"
    lines = text.splitlines(keepends=True)
    first = next((i for i, line in enumerate(lines) if start in line), None)
    if first is None:
        raise SnippetError(f'{path}: no line contains "{start}"')
    last = next((i for i in range(first, len(lines)) if stop in lines[i]), None)
    if last is None:
        raise SnippetError(f'{path}: no line after "{start}" contains "{stop}"')
    block = lines[first : last + 1]
    indent = min(len(line) - len(line.lstrip()) for line in block if line.strip())
    return "".join(line[indent:] if line.strip() else line for line in block)


def fault_table():
    """The fault catalog's Markdown table, from tests/python/test_fault_catalog.py."""
    sys.path[:0] = [str(ROOT / "tests" / "python"), str(ROOT / "tests")]
    import test_fault_catalog

    return test_fault_catalog.markdown_table()


def synced(text):
    """The page with every snippet block and generated table rewritten from its source."""

    def block(m):
        body = snippet_text(m["path"], m["start"], m["stop"])
        fence = "```" + LANGUAGE.get(pathlib.Path(m["path"]).suffix, "") + "\n"
        return m["marker"] + fence + body + "```\n"

    text = SNIPPET.sub(block, text)
    if GENERATED.search(text):
        table = fault_table()
        text = GENERATED.sub(lambda m: m[1] + table + "\n" + m[3], text)
    return text


def main(argv):
    check = "--check" in argv
    stale = []
    for page in PAGES:
        path = ROOT / page
        old = path.read_text()
        new = synced(old)
        if new != old:
            stale.append(page)
            if not check:
                path.write_text(new)
    if stale:
        verb = "differ from their sources" if check else "rewritten"
        print(f"{verb}: {', '.join(stale)}" + (" (run python docs/tools/sync_docs.py)" if check else ""))
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
