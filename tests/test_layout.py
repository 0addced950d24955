"""The rooms and which may import which: data flows one way (ingest -> train -> evaluate ->
push -> serve) and serving runs without the pipeline. Checked on the source, so a stray
import fails here in milliseconds instead of surfacing as a circular import later."""
import ast
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOMS = ["pipeline", "components", "trainer", "serving", "backbones", "datasets"]

# room -> graft sub-packages it must never import
FORBIDDEN = {
    "serving": {"pipeline", "components", "trainer", "backbones", "datasets", "cli"},
    "trainer": {"pipeline", "components", "serving", "datasets", "cli"},
    "backbones": {"pipeline", "components", "trainer", "serving", "datasets", "cli"},
    "datasets": {"pipeline", "components", "trainer", "serving", "backbones", "cli"},
    "components": {"pipeline", "trainer", "serving", "datasets", "cli"},
    "pipeline": {"serving", "datasets", "cli"},
}


def _graft_imports(path):
    tree = ast.parse(open(path).read(), path)
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for n in names:
            parts = n.split(".")
            if parts[0] == "graft" and len(parts) > 1:
                yield parts[1], node.lineno


def _sources(room):
    for dirpath, _, files in os.walk(os.path.join(ROOT, room)):
        for f in files:
            if f.endswith(".py"):
                yield os.path.join(dirpath, f)


@pytest.mark.parametrize("room", sorted(FORBIDDEN))
def test_room_imports_only_what_it_may(room):
    bad = [f"{os.path.relpath(p, ROOT)}:{line} imports graft.{sub}"
           for p in _sources(room) for sub, line in _graft_imports(p)
           if sub in FORBIDDEN[room]]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("room", ROOMS + ["graft/cli"])
def test_every_room_says_what_it_holds_and_may_import(room):
    doc = ast.get_docstring(ast.parse(open(os.path.join(ROOT, room, "__init__.py")).read()))
    assert doc and ("May import" in doc or "may import" in doc), room


def test_readme_layout_matches_the_tree():
    readme = open(os.path.join(ROOT, "README.md")).read()
    block = re.search(r"## Layout\n```\n(.*?)```", readme, re.S).group(1)
    listed = {line.split()[0].rstrip("/") for line in block.splitlines()
              if line.strip() and not line[0].isspace()}
    for name in listed:
        assert os.path.exists(os.path.join(ROOT, name)), f"README lists {name}/, not in the tree"
    for room in ROOMS + ["graft", "tests", "bench", "scripts", "requirements"]:
        assert room in listed, f"{room}/ is missing from the README's layout"
