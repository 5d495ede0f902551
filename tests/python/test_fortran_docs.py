"""Every dummy argument of every public procedure of nn_closure has its own `!!` doc comment.

FORD reads `!>` before a procedure and `!!` after a declaration; the module
documents each argument on the line that declares it (alone), so a reader of
the source or of generated docs sees what each one means.
"""

import pathlib
import re

MODULE = pathlib.Path(__file__).parents[2] / "fortran" / "nn_closure.f90"


def _source():
    """The module's lines with continuation lines joined (a trailing `!!` comment kept)."""
    return re.sub(r"&\s*\n\s*", "", MODULE.read_text()).splitlines()


def _public_names(lines):
    names = set()
    for line in lines:
        m = re.match(r"\s*(?:public|type, public)\s*::\s*(.*)", line)
        if m:
            names |= {n.strip().lower() for n in m.group(1).split(",")}
    return names


def _generics(lines):
    """Generic interface name -> its specific procedures."""
    out, current = {}, None
    for line in lines:
        m = re.match(r"\s*interface\s+(\w+)\s*$", line)
        if m:
            current = m.group(1).lower()
            out[current] = []
        elif current and re.match(r"\s*end interface", line):
            current = None
        elif current:
            m = re.match(r"\s*module procedure\s*(?:::)?\s*(.*)", line)
            if m:
                out[current] += [n.strip().lower() for n in m.group(1).split(",")]
    return out


def _procedures(lines):
    """Module procedure name -> (dummy arguments, the lines of its specification part)."""
    out = {}
    for i, line in enumerate(lines):
        m = re.match(r"  (?:[a-z()0-9_ ]+ )?(subroutine|function) (\w+)\(([^)]*)\)", line)
        if not m:
            continue
        spec = []
        for body in lines[i + 1 :]:
            if "::" not in body or body.strip().startswith("!"):
                if body.strip().startswith("!!") and spec:
                    spec[-1] += " " + body.strip()
                    continue
                break
            spec.append(body)
        args = [a.strip().lower() for a in m.group(3).split(",") if a.strip()]
        out[m.group(2).lower()] = (args, spec)
    return out


def _undocumented():
    lines = _source()
    procedures, generics = _procedures(lines), _generics(lines)
    public = set()
    for name in _public_names(lines):
        public |= set(generics.get(name, [name] if name in procedures else []))
    missing = []
    for name in sorted(public):
        args, spec = procedures[name]
        for arg in args:
            decl = [s for s in spec if re.search(rf"::\s*{arg}\b", s.split("!")[0].lower())]
            entities = decl[0].split("::", 1)[1].split("!")[0] if decl else ""
            alone = len(re.findall(r"\w+(?:\([^)]*\))?", entities)) == 1
            doc = decl[0].split("!!", 1)[1].strip() if decl and "!!" in decl[0] else ""
            if not (decl and alone and doc):
                missing.append(f"{name}({arg})")
    return public, missing


def test_every_argument_of_every_public_procedure_has_its_own_doc_comment():
    public, missing = _undocumented()
    assert len(public) >= 30, sorted(public)  # the parser found the module's procedures
    assert {"nn_load", "forward_arrays", "forward_real64", "nn_array_real32", "nn_io"} <= public
    assert not missing, f"arguments without their own !! comment: {missing}"


def test_the_check_finds_an_undocumented_argument(monkeypatch, tmp_path):
    text = MODULE.read_text().replace(
        "intent(in) :: n  !! the thread count, at least 1", "intent(in) :: n", 1
    )
    assert text != MODULE.read_text()
    (tmp_path / "nn_closure.f90").write_text(text)
    monkeypatch.setattr(__import__(__name__), "MODULE", tmp_path / "nn_closure.f90")
    assert _undocumented()[1] == ["nn_set_num_threads(n)"]
