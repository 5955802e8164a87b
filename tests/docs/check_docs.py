#!/usr/bin/env python3
"""The compliance evidence checked against the criteria's sections and the tests that exist (issue 16).

usage: check_docs.py SOURCE_DIR [BUILD_DIR]      (ctest: docs_compliance)
       check_docs.py --self-test                 (only the self-check on its fixture)

Every run first checks the checker itself on a small fixture with known faults (a missing row, an unknown section,
a bogus test of each kind...) and fails if one of them goes unreported or a good reference is reported; then it
checks SOURCE_DIR. Each problem is one line on standard output; exit status 1 if there is any, 0 otherwise.

What is checked:

1. docs/criteria-sections.txt lists the criteria's section identifiers, one a line: ID, scope (in or out), short
   title. In docs/ja/compliance.md every ID marked "in" has a row in a table whose first cell starts with the ID,
   outside the heading "## 対象外", with a status (second cell) of 対応済み, 一部対応 or 未対応; every ID marked
   "out" has a row in the table under "## 対象外". A row naming an ID the list does not hold, an ID with two rows,
   or an "in" ID listed as out (or the reverse) is a problem too.
2. Every J-number of docs/requirements.md's table (a row starting "| J<n> |") has a row in docs/compliance.md
   ("| J<n> ..."), and docs/compliance.md has no row for a J-number the requirements do not list.
3. Test references in docs/compliance.md and docs/ja/compliance.md. A reference is a code span (text between single
   backticks) whose whole text has one of these forms; anything else in backticks is not a test reference:
   - `unit_x`, `integration_x`, `e2e_x`, `docs_compliance`, `conformance`, `conformance_selftest`: a ctest entry,
     declared by add_test(NAME ...) in a CMakeLists.txt of the source tree (names built in a foreach loop are
     expanded from the loop's list); with BUILD_DIR, every entry `ctest -N` lists there must be among them, or
     the reading of the CMake lists is wrong and that is reported;
   - `t_x`: a Check test, START_TEST(t_x) in a .c file under tests/unit;
   - `test_x`: a Python test module tests/**/test_x.py, a C test source tests/**/test_x.c, a Python test method
     (def test_x) in a file under tests/, or START_TEST(test_x) under tests/unit;
   - dotted Python ids, [test_module.][TestClass.][test_method] with at least two parts or a class alone
     (`test_audit.TestDbCopy`, `TestLogin.test_lockout`, `test_shared_hsm.test_x`, `TestBearer`): the module
     exists, the class is defined in it (or, with no module, in some file under tests/), the method is defined in
     the class or a class it inherits from in the same file (with no class: in the module);
   - a path `tests/...` (or a file name `test_x.py`, `test_x.c`): it exists (the name: somewhere under tests/).
4. In docs/ja/compliance.md's rows, a code span of the 設定 column (the 4th cell) that looks like a key
   (`key` or `key = value`) is a key of docs/configuration.md's table, and a code span of the 監査記録 column (the
   6th cell) that is a single lower-case word is an audit event name of csc-admin audit query (admin/adm_audit.c).
Standard library only.
"""

import ast
import os
import re
import shutil
import subprocess
import sys
import tempfile

STATUSES = ("対応済み", "一部対応", "未対応")
OUT_HEADING = "## 対象外"
# a section id: 2.1.1, 2.1.1(4), 2.2.2(2)ア①, 2.2.2(4)なお
SECTION_ID = r"\d+(?:\.\d+)+(?:\(\d+\))?[ア-ン]?[①-⑳]?(?:なお)?"
CTEST_RE = re.compile(r"^(?:(?:unit|integration|e2e)_[a-z0-9_]+|docs_compliance|conformance|conformance_selftest)$")
CHECK_RE = re.compile(r"^t_[a-z0-9_]+$")
PYNAME_RE = re.compile(r"^test_[A-Za-z0-9_]+$")
DOTTED_RE = re.compile(r"^(?:(test_[a-z0-9_]+)\.)?(?:(Test[A-Za-z0-9_]*)\.?)?(test_[A-Za-z0-9_]+)?$")
FILE_RE = re.compile(r"^test_[a-z0-9_]+\.(?:py|c)$")


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def code_spans(text):
    return re.findall(r"`([^`\n]+)`", text)


def table_cells(line):
    """The cells of a markdown table row (None for a line that is no row); `|` inside a code span is not a border."""
    line = line.strip()
    if not line.startswith("|"):
        return None
    cells, cur, in_code = [], "", False
    for ch in line[1:]:
        if ch == "`":
            in_code = not in_code
        if ch == "|" and not in_code:
            cells.append(cur.strip())
            cur = ""
        else:
            cur += ch
    return cells


# ---- what exists ------------------------------------------------------------------------------------------------

def ctest_names(src):
    """Every add_test(NAME x) of the source tree's CMakeLists.txt files, foreach lists expanded; and problems."""
    names, problems = set(), []
    for root, dirs, files in os.walk(src):
        dirs[:] = [d for d in dirs if not d.startswith(".") and not d.startswith("build")]
        if "CMakeLists.txt" not in files:
            continue
        path = os.path.join(root, "CMakeLists.txt")
        text = re.sub(r"#[^\n]*", "", read(path))
        loops = []  # (var, items) of the enclosing foreach() blocks
        lists = {}  # VAR -> every item set() or list(APPEND) gives it in this file, whatever if() guards it
        token = re.compile(r"\b(foreach|endforeach|add_test|set|list)\s*\(([^)]*)\)", re.S)
        for m in token.finditer(text):
            kind, args = m.group(1), m.group(2).split()
            if kind == "set" and args:
                lists[args[0]] = args[1:]
            elif kind == "list" and len(args) >= 2 and args[0] == "APPEND":
                lists.setdefault(args[1], []).extend(args[2:])
            elif kind in ("set", "list"):
                pass
            elif kind == "foreach":
                # a list variable's items: foreach(_t ${LIST}) expands to what set()/list(APPEND) put in it
                args = args[:1] + [it for a in args[1:] for it in (
                    lists.get(a[2:-1], [a]) if a.startswith("${") and a.endswith("}") else [a])]
                if len(args) >= 2 and args[1] == "IN":
                    if len(args) < 3 or args[2] != "ITEMS":
                        problems.append("%s: foreach(%s) is not a plain list: cannot expand its tests"
                                        % (path, " ".join(args)))
                    args = args[:1] + args[3:]
                loops.append((args[0] if args else "", args[1:]))
            elif kind == "endforeach":
                if loops:
                    loops.pop()
            elif len(args) >= 2 and args[0] == "NAME":
                expanded = [args[1]]
                for var, items in loops:
                    ref = "${%s}" % var
                    expanded = [n.replace(ref, it) for n in expanded for it in items] if any(
                        ref in n for n in expanded) else expanded
                for n in expanded:
                    if "${" in n:
                        problems.append("%s: add_test(NAME %s): cannot expand the name" % (path, n))
                    else:
                        names.add(n)
    return names, problems


def ctest_listed(build):
    try:
        r = subprocess.run(["ctest", "-N"], cwd=build, capture_output=True, text=True)
    except OSError:
        return None
    if r.returncode != 0:
        return None
    return set(re.findall(r"^\s*Test\s+#\d+:\s+(\S+)\s*$", r.stdout, re.M))


class Tests:
    """The tests under SRC/tests: Check tests, Python modules, classes and methods, files."""

    def __init__(self, src):
        self.src = src
        self.check = set()
        self.files = {}       # base name -> [paths]
        self.modules = {}     # python module name -> {class: (bases, methods)}, and functions under None
        self.defs = set()     # every def test_x in any Python file
        tests = os.path.join(src, "tests")
        for root, dirs, files in os.walk(tests):
            dirs[:] = [d for d in dirs if d not in ("__pycache__", "artifacts")]
            for f in files:
                p = os.path.join(root, f)
                self.files.setdefault(f, []).append(p)
                if f.endswith(".c") and os.path.relpath(p, tests).startswith("unit" + os.sep):
                    self.check.update(re.findall(r"^\s*START_TEST\s*\(\s*(\w+)\s*\)", read(p), re.M))
                elif f.endswith(".py"):
                    self._python(f[:-3], p)

    def _python(self, mod, path):
        try:
            tree = ast.parse(read(path), path)
        except (SyntaxError, UnicodeDecodeError):
            return
        classes = {None: ([], set())}
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                meths = {n.name for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
                bases = [b.id for b in node.bases if isinstance(b, ast.Name)]
                classes[node.name] = (bases, meths)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                classes[None][1].add(node.name)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_"):
                self.defs.add(node.name)
        # a module name that occurs twice keeps both files' classes (tests/ has none such today)
        merged = self.modules.setdefault(mod, {None: ([], set())})
        for k, v in classes.items():
            if k in merged:
                merged[k] = (merged[k][0] + v[0], merged[k][1] | v[1])
            else:
                merged[k] = v

    def has_method(self, mod, cls, meth, seen=None):
        classes = self.modules.get(mod, {})
        if cls not in classes:
            return False
        bases, meths = classes[cls]
        if meth in meths:
            return True
        seen = seen or set()
        seen.add(cls)
        return any(self.has_method(mod, b, meth, seen) for b in bases if b not in seen)

    def missing(self, ref):
        """None if ref names a test that exists; else why not."""
        if ref.startswith("tests/"):
            return None if os.path.exists(os.path.join(self.src, ref.rstrip("/"))) else "no such path"
        if FILE_RE.match(ref):
            return None if ref in self.files else "no such file under tests/"
        if CHECK_RE.match(ref):
            return None if ref in self.check else "no START_TEST(%s) under tests/unit" % ref
        if PYNAME_RE.match(ref):
            if ref in self.modules or ref + ".c" in self.files or ref in self.defs or ref in self.check:
                return None
            return "no module, C test source, test method or Check test of that name under tests/"
        m = DOTTED_RE.match(ref)
        mod, cls, meth = m.group(1), m.group(2), m.group(3)
        if mod is not None and mod not in self.modules:
            return "no module %s.py under tests/" % mod
        mods = [mod] if mod is not None else sorted(self.modules)
        if cls is not None:
            mods = [md for md in mods if cls in self.modules[md]]
            if not mods:
                return "no class %s%s" % (cls, " in " + mod if mod else " under tests/")
            if meth is not None and not any(self.has_method(md, cls, meth) for md in mods):
                return "no method %s in class %s" % (meth, cls)
            return None
        if not any(meth in cs for md in mods for cs in (c[1] for c in self.modules[md].values())):
            return "no method %s in %s" % (meth, mod)
        return None


def test_ref_kind(span):
    """'ctest', 'other' (a test of tests/) or None (not a test reference), per the module's docstring."""
    if CTEST_RE.match(span):
        return "ctest"
    if span.startswith("tests/") and re.match(r"^[A-Za-z0-9_./-]+$", span):
        return "other"
    if FILE_RE.match(span) or CHECK_RE.match(span) or PYNAME_RE.match(span):
        return "other"
    m = DOTTED_RE.match(span)
    if m and any(m.groups()) and ("." in span or m.group(2)):
        return "other"
    return None


# ---- the checks -------------------------------------------------------------------------------------------------

def load_sections(path, problems):
    sections = {}
    for n, line in enumerate(read(path).splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 2)
        if len(parts) < 3 or parts[1] not in ("in", "out") or not re.fullmatch(SECTION_ID, parts[0]):
            problems.append("%s:%d: not 'ID in|out TITLE': %s" % (path, n, line))
            continue
        if parts[0] in sections:
            problems.append("%s:%d: %s listed twice" % (path, n, parts[0]))
        sections[parts[0]] = parts[1]
    return sections


def ja_rows(path):
    """(id, cells, out) for each table row of docs/ja/compliance.md whose first cell starts with a section id."""
    rows, out = [], False
    for line in read(path).splitlines():
        if line.startswith("## "):
            out = line.strip() == OUT_HEADING
        cells = table_cells(line)
        if not cells:
            continue
        m = re.match(r"^`?(%s)(?![\d.(])" % SECTION_ID, cells[0])
        if m:
            rows.append((m.group(1), cells, out))
    return rows


def config_keys(src):
    keys = set()
    for line in read(os.path.join(src, "docs", "configuration.md")).splitlines():
        cells = table_cells(line)
        if cells:
            keys.update(code_spans(cells[0]))
    return keys


def event_names(src):
    text = read(os.path.join(src, "admin", "adm_audit.c"))
    m = re.search(r"event_names\[\]\s*=\s*\{(.*?)\};", text, re.S)
    return set(re.findall(r'=\s*"([a-z-]+)"', m.group(1))) if m else set()


def check(src, build=None):
    problems = []
    docs = os.path.join(src, "docs")
    ja = os.path.join(docs, "ja", "compliance.md")
    en = os.path.join(docs, "compliance.md")

    for f in (os.path.join(docs, "criteria-sections.txt"), ja, en, os.path.join(docs, "requirements.md")):
        if not os.path.isfile(f):
            return ["%s: missing" % os.path.relpath(f, src)]

    # 1. every section of the criteria has its row
    sections = load_sections(os.path.join(docs, "criteria-sections.txt"), problems)
    seen = {}
    rows = ja_rows(ja)
    keys, events = config_keys(src), event_names(src)
    for sid, cells, out in rows:
        where = "docs/ja/compliance.md: %s" % sid
        if sid not in sections:
            problems.append("%s: not a section of docs/criteria-sections.txt" % where)
            continue
        if sid in seen:
            problems.append("%s: two rows" % where)
        seen[sid] = out
        if out and sections[sid] == "in":
            problems.append("%s: listed out of scope, but docs/criteria-sections.txt has it in scope" % where)
        if not out:
            if sections[sid] == "out":
                problems.append("%s: has a row, but docs/criteria-sections.txt has it out of scope" % where)
            if len(cells) < 6:
                problems.append("%s: %d cells, want 6 (区分, 対応状況, 機能, 設定, 試験, 監査記録)"
                                % (where, len(cells)))
                continue
            if cells[1] not in STATUSES:
                problems.append("%s: status %r is not one of %s" % (where, cells[1], ", ".join(STATUSES)))
            for span in code_spans(cells[3]):
                key = span.split("=")[0].strip()
                if re.fullmatch(r"[a-z][a-z0-9_]*", key) and key not in keys:
                    problems.append("%s: configuration key `%s` is not in docs/configuration.md" % (where, key))
            for span in code_spans(cells[5]):
                if re.fullmatch(r"[a-z][a-z-]*", span) and span not in events:
                    problems.append("%s: `%s` is not an audit event of csc-admin audit query" % (where, span))
    for sid, scope in sorted(sections.items()):
        if sid not in seen:
            problems.append("docs/ja/compliance.md: %s (%s scope) has no %s" % (
                sid, scope, "row" if scope == "in" else "line in the list under " + OUT_HEADING))

    # 2. every requirement has its row
    req = set(re.findall(r"^\|\s*(J\d+)\s*\|", read(os.path.join(docs, "requirements.md")), re.M))
    have = set(re.findall(r"^\|\s*(J\d+)\b", read(en), re.M))
    for j in sorted(req - have, key=lambda s: int(s[1:])):
        problems.append("docs/compliance.md: %s of docs/requirements.md has no row" % j)
    for j in sorted(have - req, key=lambda s: int(s[1:])):
        problems.append("docs/compliance.md: a row for %s, which docs/requirements.md does not list" % j)

    # 3. every test named exists
    names, cmake_problems = ctest_names(src)
    problems += cmake_problems
    if build:
        listed = ctest_listed(build)
        if listed is None:
            problems.append("%s: ctest -N failed" % build)
        else:
            for n in sorted(listed - names):
                problems.append("ctest -N lists %s, which the reading of the CMake lists missed" % n)
    tests = Tests(src)
    for doc in (en, ja):
        rel = os.path.relpath(doc, src)
        for span in sorted(set(code_spans(read(doc)))):
            kind = test_ref_kind(span)
            if kind == "ctest" and span not in names:
                problems.append("%s: `%s`: no such ctest entry" % (rel, span))
            elif kind == "other":
                why = tests.missing(span)
                if why:
                    problems.append("%s: `%s`: %s" % (rel, span, why))
    return problems


# ---- the self-check ---------------------------------------------------------------------------------------------

FIXTURE = {
    "tests/CMakeLists.txt": """
# add_test(NAME unit_commented_out COMMAND x)
foreach(_t alpha beta)
  add_test(NAME integration_${_t} COMMAND python3 -m unittest test_${_t})
endforeach()
add_test(NAME unit_one COMMAND one)
set(_more gamma_one)
if(X)
  list(APPEND _more delta)
endif()
foreach(_m ${_more})
  add_test(NAME unit_${_m}_replay COMMAND x)
endforeach()
""",
    "tests/unit/one/test_one.c": "START_TEST(t_good)\n{\n}\nEND_TEST\n",
    "tests/integration/test_alpha.py": """
import unittest
class Base(unittest.TestCase):
    def test_inherited(self):
        pass
class TestA(Base):
    def test_b(self):
        pass
def test_free():
    pass
""",
    "tests/integration/test_beta.py": "import unittest\n",
    "docs/requirements.md": "| ID | x |\n|---|---|\n| J1 | a |\n| J2 | b |\n",
    "docs/configuration.md": "| key | default | meaning |\n|---|---|---|\n| `good_key` | 1 | x |\n",
    "admin/adm_audit.c": 'static const char *const event_names[] = {\n    [1] = "sign", [2] = "login",\n};\n',
    "docs/criteria-sections.txt": "# fixture\n1.1(1)  in  first\n1.1(2)  in  second\n1.2  out  third\n"
                                  "1.3  out  fourth\n2.2.2(2)ア①  in  fifth\n",
    "docs/compliance.md": """
| ID | Status | What | Where | Proof |
|---|---|---|---|---|
| J1 x | done | a | b | `unit_one`, `integration_alpha`, `t_good`, `test_alpha.TestA.test_b`, `TestA.test_inherited`,
`test_alpha.test_free`, `test_beta`, `test_free`, `tests/unit/one/test_one.c`, `test_one`, `not a test`,
`unit_delta_replay` |
| J3 x | done | a | b | `unit_bogus`, `t_missing`, `test_alpha.TestA.test_nope`, `TestGone`, `test_gamma.TestA`,
`tests/unit/nowhere`, `integration_gamma`, `test_nothing` |
""",
    "docs/ja/compliance.md": """
| 区分 | 対応状況 | 機能 | 設定 | 試験 | 監査記録 |
|---|---|---|---|---|---|
| 1.1(1) 一 | 対応済み | x | `good_key`, `bad_key = 1` | `test_alpha.TestA` | `sign`, `nosuch` |
| 2.2.2(2)ア① 五 | たぶん | x | | `unit_one` | |
| 9.9(9) 九 | 未対応 | x | | | |

## 対象外

| 区分 | 理由 |
|---|---|
| 1.2 三 | y |
| 1.1(2) 二 | z |
""",
}

# Each expected problem, as a fragment of its line. Any other line is a fault of the checker: the good references of
# the fixture (unit_one, integration_alpha, unit_delta_replay of a list variable's foreach, t_good, test_alpha.TestA.test_b, the inherited method, the module's
# function, test_beta, test_one's C source, good_key, sign, sections 1.1(1) and 1.2) must not be reported.
EXPECTED = [
    "docs/ja/compliance.md: 1.3 (out scope) has no line",                   # an out section not listed
    "docs/ja/compliance.md: 1.1(2): listed out of scope",                    # an in section listed as out
    "docs/ja/compliance.md: 9.9(9): not a section",                          # an unknown section
    "docs/ja/compliance.md: 2.2.2(2)ア①: status 'たぶん'",                   # a status that is none
    "`bad_key` is not in docs/configuration.md",
    "`nosuch` is not an audit event",
    "docs/compliance.md: J2 of docs/requirements.md has no row",
    "docs/compliance.md: a row for J3",
    "`unit_bogus`: no such ctest entry",
    "`integration_gamma`: no such ctest entry",
    "`t_missing`: no START_TEST",
    "`test_alpha.TestA.test_nope`: no method test_nope",
    "`TestGone`: no class TestGone",
    "`test_gamma.TestA`: no module test_gamma.py",
    "`tests/unit/nowhere`: no such path",
    "`test_nothing`: no module",
]


def self_test():
    d = tempfile.mkdtemp(prefix="check_docs.")
    try:
        for rel, text in FIXTURE.items():
            os.makedirs(os.path.dirname(os.path.join(d, rel)), exist_ok=True)
            with open(os.path.join(d, rel), "w", encoding="utf-8") as f:
                f.write(text)
        got = check(d)
    finally:
        shutil.rmtree(d)
    bad = ["self-test: not reported: " + e for e in EXPECTED if not any(e in p for p in got)]
    bad += ["self-test: unexpected: " + p for p in got if not any(e in p for e in EXPECTED)]
    return bad


def main(argv):
    if len(argv) == 2 and argv[1] == "--self-test":
        bad = self_test()
    elif len(argv) in (2, 3):
        bad = self_test()
        if not bad:
            bad = check(os.path.abspath(argv[1]), argv[2] if len(argv) == 3 else None)
    else:
        sys.stderr.write(__doc__.split("\n\n")[1] + "\n")
        return 2
    for p in bad:
        print(p)
    if not bad:
        print("docs: compliance tables complete, every test they name exists")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
