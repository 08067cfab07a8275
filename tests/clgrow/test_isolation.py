"""clgrow is usable with PyTorch alone."""

from __future__ import annotations

import subprocess
import sys


def test_clgrow_imports_and_grows_without_avalanche():
    code = (
        "import sys; sys.modules['avalanche'] = None\n"
        "import torch, clgrow\n"
        "from torch.utils.data import TensorDataset, DataLoader\n"
        "m = clgrow.mlp(4, [3, 3], 2)\n"
        "dl = DataLoader(TensorDataset(torch.randn(16, 4), torch.randint(0, 2, (16,))), batch_size=8)\n"
        "r = clgrow.grow(m, 4, dl)\n"
        "g = clgrow.as_growable(m); assert sum(g.hidden_sizes) == 10, g.hidden_sizes\n"
        "assert not any(k.startswith('avalanche') and sys.modules[k] for k in sys.modules)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_layers_install_under_one_namespace_and_leave_users_packages_alone(tmp_path):
    """A project with its own ``experiments`` and ``strategies`` packages still imports them."""
    for name in ("experiments", "strategies"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("MINE = True\n")
    code = (
        "import experiments, strategies\n"
        "import clgrow.experiments.config, clgrow.strategies\n"
        "assert experiments.MINE and strategies.MINE\n"
        "assert clgrow.strategies.GrowPlugin.__module__ == 'clgrow.strategies.plugin'\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr


_PACKAGES = ("clgrow", "clgrow.strategies", "clgrow.experiments", "clgrow.experiments.bench")


def _import_graph() -> dict[str, set[str]]:
    """Module -> clgrow modules it imports (at any level), read from the sources."""
    import ast
    import importlib.util
    import pkgutil

    graph: dict[str, set[str]] = {}
    for root in _PACKAGES:
        path = importlib.util.find_spec(root).submodule_search_locations
        names = [root] + [f"{root}.{m.name}" for m in pkgutil.iter_modules(path) if not m.ispkg]
        for name in names:
            spec = importlib.util.find_spec(name)
            tree = ast.parse(open(spec.origin).read())
            # imports for type hints only (under `if TYPE_CHECKING:`) never run, so they cannot cycle
            typing_only = {
                id(n)
                for block in ast.walk(tree)
                if isinstance(block, ast.If) and ast.unparse(block.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
                for n in ast.walk(block)
            }
            deps = set()
            for node in ast.walk(tree):
                if id(node) in typing_only:
                    continue
                if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("clgrow"):
                    deps.add(node.module)
                elif isinstance(node, ast.Import):
                    deps.update(a.name for a in node.names if a.name.startswith("clgrow"))
            graph[name] = deps - {name}
    return graph


def test_no_import_cycles_between_modules():
    graph = _import_graph()
    assert "clgrow.experiments.cli" in graph and "clgrow.strategies.plugin" in graph
    # package __init__ files re-export their children; cycles through them are not real
    edges = {
        n: {d for d in deps if d not in _PACKAGES and d in graph} for n, deps in graph.items() if n not in _PACKAGES
    }
    state: dict[str, int] = {}

    def visit(n: str, path: list[str]) -> None:
        state[n] = 1
        for d in edges.get(n, ()):
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(d) :] + [d]))
            if d not in state:
                visit(d, path + [d])
        state[n] = 2

    for n in edges:
        if n not in state:
            visit(n, [n])


def test_layers_import_downwards_only():
    """clgrow never imports the Avalanche layer or the experiments; strategies never experiments."""
    for name, deps in _import_graph().items():
        if not name.startswith(("clgrow.strategies", "clgrow.experiments")):
            assert not any(d.startswith(("clgrow.strategies", "clgrow.experiments")) for d in deps), name
        if name.startswith("clgrow.strategies"):
            assert not any(d.startswith("clgrow.experiments") for d in deps), name
