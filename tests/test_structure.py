"""Imports flow one way: ghostnet_tf <- convert <- android_bench, and no module imports itself back
through others (lazy imports inside functions count too)."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ghostnet_tf", "convert", "android_bench")  # each may import only those before it


def project_imports():
    """{module: {imported project modules}} read from the source, function-level imports included."""
    graph = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            targets = set()
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    targets |= {alias.name for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module:
                    targets |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
            graph[module] = {t for t in targets if t.split(".")[0] in PACKAGES}
    return {module: {t for t in targets if t in graph and t != module} for module, targets in graph.items()}


def test_packages_import_only_the_ones_below_them():
    wrong = [(module, target) for module, targets in project_imports().items() for target in targets
             if PACKAGES.index(target.split(".")[0]) > PACKAGES.index(module.split(".")[0])]
    assert wrong == []


def test_no_import_cycles():
    graph = project_imports()
    cycles = []

    def visit(module, path):
        for target in graph[module]:
            if target in path:
                cycles.append(path[path.index(target):] + [target])
            elif target not in done:
                visit(target, path + [target])
        done.add(module)

    done = set()
    for module in sorted(graph):
        if module not in done:
            visit(module, [module])
    assert cycles == []


def test_the_cli_families_are_the_registry_s():
    from ghostnet_tf import commands, registry

    assert commands.FAMILIES == tuple(registry.FAMILY_PREFIX)
