"""The import graph points downward: each module imports only modules of its own layer or below (lazy imports
inside functions included), and siblings (analysis and experiments, data and models) not each other."""

import ast
from pathlib import Path

import cnnlab

ROOT = Path(cnnlab.__file__).parent

# the layers, bottom first: a module's layer is the first whose prefixes match its dotted name
LAYERS = [
    ("ground", ("errors", "yamlsize", "text", "registry", "files")),
    # the registries of choices a config names; they import only the ground floor (and torch lazily)
    ("choices", ("engine.optim", "engine.losses", "engine.focal_loss", "engine.callbacks")),
    ("config", ("config",)),
    ("formats", ("runfolder", "studyfolder", "folders")),
    ("data", ("data",)),
    ("models", ("models",)),
    ("engine", ("engine",)),
    ("experiments", ("experiments",)),
    ("analysis", ("analysis",)),
    ("api", ("results", "api")),
    ("cli", ("cli", "__main__")),
]
SIBLINGS = {frozenset({"experiments", "analysis"})}  # neither may import the other


def layer_of(module: str) -> str:
    if module in ("", "__version__"):  # the package itself: its version
        return "ground"
    for layer, prefixes in LAYERS:
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return layer
    raise AssertionError(f"{module} belongs to no layer; add it to LAYERS")


def imports() -> dict[str, set[str]]:
    """module (dotted, without 'cnnlab.') -> the cnnlab modules it imports anywhere in its file."""
    found = {}
    for file in ROOT.rglob("*.py"):
        parts = file.relative_to(ROOT).with_suffix("").parts
        if parts == ("__init__",):
            continue  # the package's lazy table of public names
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        package = module.split(".") if parts[-1] == "__init__" else module.split(".")[:-1]
        targets = set()
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[: len(package) - node.level + 1]
                    names = [".".join([*base, node.module])] if node.module else [".".join([*base, a.name])
                                                                                   for a in node.names]
                elif (node.module or "").startswith("cnnlab."):
                    names = [node.module.removeprefix("cnnlab.")]
                else:
                    names = []
                targets.update(n for n in names if n)
            elif isinstance(node, ast.Import):
                targets.update(a.name.removeprefix("cnnlab.") for a in node.names if a.name.startswith("cnnlab."))
        found[module] = targets
    return found


def test_every_import_points_down_or_stays_in_its_layer():
    order = [layer for layer, _ in LAYERS]
    wrong = []
    for module, targets in sorted(imports().items()):
        mine = layer_of(module)
        for target in sorted(targets):
            theirs = layer_of(target)
            if order.index(theirs) > order.index(mine):
                wrong.append(f"{module} ({mine}) imports {target} ({theirs})")
    assert wrong == []


def test_sibling_layers_do_not_import_each_other():
    wrong = [f"{m} imports {t}" for m, targets in imports().items() for t in targets
             if frozenset({layer_of(m), layer_of(t)}) in SIBLINGS]
    assert wrong == []


def test_no_import_cycles_between_modules():
    graph = imports()
    modules = set(graph)
    edges = {m: {t for t in targets if t in modules and t != m} for m, targets in graph.items()}
    state, cycles = {}, []

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join([*path[path.index(nxt):], nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for module in sorted(modules):
        if module not in state:
            visit(module, [module])
    assert cycles == []
