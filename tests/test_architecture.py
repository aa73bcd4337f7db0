"""The package's rooms import only rooms below them (docs/architecture.md): checked on the source."""
import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "alexnet"

CORE = {"config", "errors", "runtime", "fsutil", "checkpoint", "presets"}
TOP = {"__init__", "__main__"}  # the package's public surface and `python -m alexnet`: may import anything
# room -> level; a module may import its own room and rooms of a lower level, never a sibling or one above
LEVELS = {"core": 0, "nets": 1, "data": 1, "evaluate": 2, "train": 3, "bench": 4, "ship": 4, "viz": 5,
          "experiments": 6, "cli": 7, "top": 8}


def room(module: str) -> str:
    """'alexnet.train.loop' -> 'train'; 'alexnet.config' -> 'core'; 'alexnet' -> 'top'."""
    parts = module.split(".")
    name = parts[1] if len(parts) > 1 else "__init__"
    return "core" if name in CORE else "top" if name in TOP else name


def imports(path: Path) -> set[str]:
    """Every alexnet module `path` imports, relative imports resolved."""
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    package = ".".join(parts[:-1])  # what a relative import is relative to (for __init__.py: its own package)
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "alexnet"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "alexnet":
                found |= {target} if node.module else {f"{target}.{a.name}" for a in node.names}
    return found


def test_every_room_has_a_level():
    rooms = {room(f"alexnet.{p.stem}") for p in PKG.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()
             or p.name == "presets"}
    assert rooms <= set(LEVELS), f"rooms without a level (add them to docs/architecture.md and here): {rooms - set(LEVELS)}"


def test_imports_point_down():
    wrong = []
    for path in sorted(PKG.rglob("*.py")):
        parts = path.relative_to(PKG.parent).with_suffix("").parts
        src = room(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
        for target in imports(path):
            dst = room(target)
            if dst != src and LEVELS[dst] >= LEVELS[src]:
                wrong.append(f"{path.relative_to(PKG.parent)} imports {target} ({src} {LEVELS[src]} -> {dst} {LEVELS[dst]})")
    assert not wrong, "\n".join(wrong)


def module_of(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(target: str, modules: set[str]) -> str | None:
    """The module an import names ('alexnet.ship.weights.Weights' -> 'alexnet.ship.weights'), if it is one of ours."""
    while target and target not in modules:
        target = target.rpartition(".")[0]
    return target or None


def test_no_import_circle_inside_a_room():
    """Within a room, module A importing B (at module level or inside a function) and B importing
    A, directly or through others, is a circle: each room's imports form a tree."""
    paths = {module_of(p): p for p in sorted(PKG.rglob("*.py"))}
    modules = set(paths)
    graph = {}
    for name, path in paths.items():
        deps = {resolve(t, modules) for t in imports(path)}
        graph[name] = {d for d in deps if d and d != name and room(d) == room(name)}
    circles = []

    def visit(node: str, stack: list[str], done: set[str]) -> None:
        for dep in sorted(graph[node]):
            if dep in stack:
                circles.append(" -> ".join(stack[stack.index(dep):] + [dep]))
            elif dep not in done:
                visit(dep, stack + [dep], done)
        done.add(node)

    done: set[str] = set()
    for name in sorted(graph):
        if name not in done:
            visit(name, [name], done)
    assert not circles, "import circles:\n" + "\n".join(sorted(set(circles)))
