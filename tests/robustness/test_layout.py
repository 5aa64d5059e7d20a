"""The layering rule of the repository, read from the import statements of every module:

- the concept files (and data/) import only each other, configurator.py and support/;
- nothing outside experiments/ imports an experiment;
- no import cycles, counting the imports inside functions too. An import under
  `if __name__ == "__main__":` does not count: it runs only when the file is the script (then a module
  named __main__, not the module others import), so `python zsl.py` may hand over to support/zsl_cli.py,
  which imports zsl.
"""
import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONCEPT = {"model", "train", "configurator", "bnsl", "curves", "deceleration", "zsl", "token_grads", "plots",
           "data", "data.prepare", "data.bpe"}


def project_modules():
    """{module name: path} of every .py file of the project outside tests/."""
    modules = {}
    for folder in ("", "data", "support", "experiments"):
        for name in sorted(os.listdir(os.path.join(ROOT, folder))):
            if name.endswith(".py"):
                stem = name[:-3]
                module = (f"{folder}.{stem}" if stem != "__init__" else folder) if folder else stem
                modules[module] = os.path.join(ROOT, folder, name)
    return modules


def is_main_guard(node):
    """`if __name__ == "__main__":`"""
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"
            and len(test.comparators) == 1 and getattr(test.comparators[0], "value", None) == "__main__")


def imported(source, known):
    """The project modules (names in `known`) that `source` imports, outside `if __name__ == "__main__":`."""
    found = set()

    def visit(node):
        if is_main_guard(node):
            return
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            names = []
        found.update(name for name in names if name in known)
        for child in ast.iter_child_nodes(node):
            visit(child)
    visit(ast.parse(source))
    return found


def import_graph():
    modules = project_modules()
    graph = {}
    for module, path in modules.items():
        with open(path, encoding="utf-8") as f:
            graph[module] = imported(f.read(), modules) - {module}
    return graph


def cycles(graph):
    """Every module that lies on an import cycle, with one cycle through it (depth-first search)."""
    found = {}
    for start in graph:
        stack = [(start, [start])]
        seen = set()
        while stack:
            node, path = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    found.setdefault(start, path + [start])
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, path + [nxt]))
    return found


def test_the_reader_sees_imports_and_skips_the_main_guard():
    known = {"zsl", "support.zsl_cli", "support", "bnsl"}
    source = ("import bnsl\n"
              "def f():\n    from support import zsl_cli\n"
              "if __name__ == '__main__':\n    import zsl\n")
    assert imported(source, known) == {"bnsl", "support", "support.zsl_cli"}
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == {"a": ["a", "b", "a"], "b": ["b", "a", "b"]}
    assert "model" in import_graph()["train"] and "support.zsl_cli" in import_graph()


@pytest.mark.parametrize("module", sorted(CONCEPT))
def test_a_concept_file_imports_only_concepts_configurator_and_support(module):
    outside = {m for m in import_graph()[module] if m not in CONCEPT and m != "support"
               and not m.startswith("support.")}
    assert not outside, f"{module} imports {sorted(outside)}"


def test_nothing_imports_an_experiment():
    graph = import_graph()
    wrong = {m: sorted(i for i in imports if i.startswith("experiments"))
             for m, imports in graph.items() if not m.startswith("experiments")}
    assert not {m: i for m, i in wrong.items() if i}


def test_no_import_cycles():
    assert cycles(import_graph()) == {}
