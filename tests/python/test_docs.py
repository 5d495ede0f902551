"""The README and docs/ cannot rot: every code block in Fortran, C or Python is a snippet of a
file that a test builds or runs, and equal to it; every relative link and anchor resolves."""

import pathlib
import re
import sys

import pytest

ROOT = pathlib.Path(__file__).parents[2]
sys.path.insert(0, str(ROOT / "docs" / "tools"))
import sync_docs  # noqa: E402

PAGES = sync_docs.PAGES
# Links are checked in the examples' and the native engine's READMEs too (their code is their own).
LINKED_PAGES = PAGES + sorted(
    {
        str(p.relative_to(ROOT))
        for p in [*(ROOT / "examples").glob("*/README.md"), ROOT / "cbridge" / "native" / "README.md"]
    }
    - set(PAGES)
)
CODE_LANGUAGES = {"fortran", "c", "python", "cpp"}
FENCE = re.compile(r"^```(\w*)", re.MULTILINE)
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def _text(page):
    return (ROOT / page).read_text()


def test_the_pages_exist_and_the_readme_is_a_landing_page():
    assert "docs/index.md" in PAGES and "docs/developer.md" in PAGES and "docs/faults.md" in PAGES
    assert len(_text("README.md").splitlines()) <= 160


@pytest.mark.parametrize("page", PAGES)
def test_snippets_equal_the_files_they_come_from(page):
    text = _text(page)
    assert sync_docs.synced(text) == text, f"{page}: run python docs/tools/sync_docs.py"


@pytest.mark.parametrize("page", PAGES)
def test_every_code_block_is_a_snippet(page):
    # A block of Fortran, C or Python written into a page by hand would not be compiled by anyone.
    text = _text(page)
    for m in FENCE.finditer(text):
        if m[1] in CODE_LANGUAGES:
            before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
            line = text.count("\n", 0, m.start()) + 1
            assert before.startswith("<!-- snippet: "), (
                f"{page}:{line}: a {m[1]} block without a snippet marker"
            )


def _test_sources():
    return "\n".join(p.read_text() for p in (ROOT / "tests").rglob("*.py") if p.name != "test_docs.py")


def test_every_snippet_file_is_built_or_run_by_a_test():
    # The file's name appears in a test (which compiles or runs it): code shown in the docs is code
    # that a test failure would flag.
    tests = _test_sources()
    used = {path for page in PAGES for path, _, _ in sync_docs.snippets(_text(page))}
    assert used, "no snippets at all"
    for path in used:
        assert pathlib.Path(path).name in tests, f"{path} is shown in the docs but no test names it"


def test_a_snippet_of_a_missing_region_is_an_error(tmp_path):
    with pytest.raises(sync_docs.SnippetError, match="no line contains"):
        sync_docs.snippet_text("examples/first/host.f90", "no such line", "end")
    with pytest.raises(sync_docs.SnippetError, match="does not exist"):
        sync_docs.snippet_text("examples/first/missing.f90")


def test_a_changed_snippet_file_makes_its_block_stale():
    page = "<!-- snippet: examples/first/host.f90 -->\n```fortran\nprogram old\n```\n"
    assert "program first_host" in sync_docs.synced(page)
    assert sync_docs.synced(page) != page


def _slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page):
    anchors, seen = set(), {}
    in_fence = False
    for line in _text(page).splitlines():
        if line.startswith("```"):
            in_fence = not in_fence
        elif not in_fence and line.startswith("#"):
            slug = _slug(line.lstrip("#"))
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def _links(page):
    text = re.sub(r"```.*?```", "", _text(page), flags=re.DOTALL)  # not inside code
    text = re.sub(r"`[^`\n]*`", "", text)
    return LINK.findall(text)


@pytest.mark.parametrize("page", LINKED_PAGES)
def test_relative_links_and_anchors_resolve(page):
    for target in _links(page):
        if re.match(r"[a-z]+:", target):
            continue  # http:, https:, mailto:
        path, _, anchor = target.partition("#")
        dest = (ROOT / page).parent / path if path else ROOT / page
        assert dest.exists(), f"{page}: link to {target}: {dest.relative_to(ROOT)} does not exist"
        if anchor:
            assert dest.suffix == ".md", f"{page}: anchor into a non-Markdown file: {target}"
            assert anchor in _anchors(str(dest.resolve().relative_to(ROOT))), (
                f"{page}: no heading #{anchor} in {path}"
            )


def test_the_link_checker_sees_a_broken_link():
    assert _slug("Threads, MPI and memory") == "threads-mpi-and-memory"
    assert _slug("Model formats: TorchScript `.pt`") == "model-formats-torchscript-pt"
    assert "docs/nothing.md" in LINK.findall("see [there](docs/nothing.md).")
