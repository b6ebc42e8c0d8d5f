"""Imports of keras_jepa only point down, and no folder has an import cycle.

Every import statement of the package is read from the source (including imports inside
functions, which run later but tie the modules together all the same). The layers, from
the bottom (see CONTRIBUTING.md):

    version < backend < layers < masks < data < training < presets < models < evaluation
            < checkpoints < applications (and the ``distribute`` alias) < programs < cli

Inside ``models/`` the families are ordered too: ``vit`` (the backbone every family
uses) < ``jepa`` (the JEPA base model and predictor) < every other family, and a family
never imports another family of its level. Package ``__init__`` files that only gather
public names (``keras_jepa/__init__.py``, ``models/__init__.py``) are exempt from the
order, not from the cycle check.
"""

import ast
import collections
import os

import pytest

from tests.test_case import REPO_ROOT

ROOT = os.path.join(REPO_ROOT, "keras_jepa")

LEVELS = {
    "version": 0, "backend": 1, "layers": 2, "masks": 3, "data": 4, "training": 5,
    "presets": 6, "models": 7, "evaluation": 8, "checkpoints": 9,
    "applications": 10, "distribute": 10, "programs": 11, "cli": 12,
}
# Inside models/: vit < jepa < the other families (which never import each other).
FAMILY_LEVELS = {"vit": 0, "jepa": 1}
LEAF_FAMILY = 2
AGGREGATORS = {"keras_jepa", "keras_jepa.models"}


def _modules():
    """``{module name: path}`` for every module of the package."""
    out = {}
    for folder, _, files in os.walk(ROOT):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, os.path.dirname(ROOT))[:-3].replace(os.sep, ".")
            out[rel[: -len(".__init__")] if rel.endswith(".__init__") else rel] = path
    return out


def _imports(modules):
    """``{module: {(imported module, line)}}``, resolving ``from pkg import submodule``."""
    edges = collections.defaultdict(set)
    for module, path in modules.items():
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                           for a in node.names]
            else:
                continue
            for target in targets:
                while target and target not in modules and target.startswith("keras_jepa"):
                    target = target.rpartition(".")[0]
                if target in modules and target != module:
                    edges[module].add((target, node.lineno))
    return edges


MODULES = _modules()
EDGES = _imports(MODULES)


def _top(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _family(module):
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "models" else None


def _violations():
    bad = []
    for module, targets in EDGES.items():
        if module in AGGREGATORS:
            continue
        for target, line in targets:
            where = f"{module} (line {line}) imports {target}"
            top, target_top = _top(module), _top(target)
            if target_top is None:
                bad.append(f"{where}: the package root gathers public names; import the "
                           "module itself")
                continue
            if top != target_top:
                if LEVELS[target_top] >= LEVELS[top]:
                    bad.append(f"{where}: {target_top} is not below {top}")
                continue
            family, target_family = _family(module), _family(target)
            if top == "models" and family and target_family and family != target_family:
                level = FAMILY_LEVELS.get(family, LEAF_FAMILY)
                target_level = FAMILY_LEVELS.get(target_family, LEAF_FAMILY)
                if target_level >= level:
                    bad.append(f"{where}: family {target_family} is not below {family}")
            if top == "models" and family and target == "keras_jepa.models":
                bad.append(f"{where}: a family imports the models aggregator")
    return sorted(bad)


def _cycles(nodes):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    graph = {m: {t for t, _ in EDGES.get(m, ()) if t in nodes} for m in nodes}

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


BACKEND_PACKAGES = ("jax", "jaxlib", "torch", "tensorflow")


def test_only_backend_imports_a_backend():
    bad = []
    for module, path in MODULES.items():
        if _top(module) == "backend":
            continue
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            bad += [f"{module} (line {node.lineno}) imports {name}" for name in names
                    if name.split(".")[0] in BACKEND_PACKAGES]
    assert not bad, "backend imports outside keras_jepa/backend:\n" + "\n".join(bad)


def test_the_layer_table_covers_every_top_folder():
    tops = {_top(m) for m in MODULES} - {None}
    assert tops <= set(LEVELS), sorted(tops - set(LEVELS))


def test_imports_point_down():
    bad = _violations()
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_no_cycle_between_top_folders():
    graph = collections.defaultdict(set)
    for module, targets in EDGES.items():
        if module in AGGREGATORS:
            continue
        for target, _ in targets:
            if _top(module) and _top(target) and _top(module) != _top(target):
                graph[_top(module)].add(_top(target))
    seen, path = set(), []

    def walk(node):
        if node in path:
            return path[path.index(node):] + [node]
        if node in seen:
            return None
        seen.add(node)
        path.append(node)
        for nxt in sorted(graph[node]):
            found = walk(nxt)
            if found:
                return found
        path.pop()
        return None

    for node in sorted(graph):
        cycle = walk(node)
        assert cycle is None, " -> ".join(cycle)


@pytest.mark.parametrize("folder", sorted({_top(m) for m in MODULES if _top(m)}))
def test_no_cycle_inside_a_folder(folder):
    nodes = {m for m in MODULES if _top(m) == folder}
    assert not _cycles(nodes), _cycles(nodes)


def test_at_least_eight_family_folders():
    families = {_family(m) for m in MODULES if _family(m)}
    assert len(families) >= 7 and {"vit", "jepa", "iwm", "llip", "xrm", "vedit",
                                   "vistallm"} <= families, sorted(families)


def test_the_checker_sees_a_violation():
    # A synthetic upward import and a synthetic cycle are caught.
    EDGES["keras_jepa.layers.mlp"].add(("keras_jepa.models.vit.vision_transformer", 1))
    EDGES["keras_jepa.models.llip.model"].add(("keras_jepa.models.xrm.model", 1))
    try:
        bad = _violations()
        assert any("layers.mlp" in b and "models is not below layers" in b for b in bad)
        assert any("family xrm is not below llip" in b for b in bad)
        nodes = {m for m in MODULES if _top(m) == "layers"}
        EDGES["keras_jepa.layers.initializers"].add(("keras_jepa.layers.mlp", 1))
        assert _cycles(nodes)
    finally:
        EDGES["keras_jepa.layers.mlp"].discard(("keras_jepa.models.vit.vision_transformer", 1))
        EDGES["keras_jepa.models.llip.model"].discard(("keras_jepa.models.xrm.model", 1))
        EDGES["keras_jepa.layers.initializers"].discard(("keras_jepa.layers.mlp", 1))
