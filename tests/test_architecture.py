"""The house's architecture: dependencies point one way and no package imports in a circle.

The contracts live in ``pyproject.toml`` (``[tool.importlinter]``): reports -> experiments
-> (simulator | monitor, independent of each other) -> polyvocab, and no import circle
among the modules of any package. ``make lint`` runs them too; this test makes ``make test``
enforce them.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _imported_modules(path: Path) -> set[str]:
    """Every absolute module name a file imports, at any depth (lazy imports included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def _lint_imports() -> str:
    beside = Path(sys.executable).with_name("lint-imports")
    if beside.exists():
        return str(beside)
    found = shutil.which("lint-imports")
    if found is None:
        pytest.fail("lint-imports not found: install the dev extra (make install)")
    return found


def test_import_contracts_are_kept() -> None:
    proc = subprocess.run([_lint_imports(), "--no-cache"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_simulator_imports_nothing_from_the_monitor() -> None:
    # the simulator's ground truth must not run the code it judges
    offenders = {
        str(path.relative_to(ROOT)): sorted(m for m in _imported_modules(path)
                                           if m == "monitor" or m.startswith("monitor."))
        for path in sorted((ROOT / "simulator").rglob("*.py"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_vocabulary_imports_nothing_of_the_project() -> None:
    project = {"simulator", "monitor", "experiments", "reports"}
    for path in sorted((ROOT / "polyvocab").rglob("*.py")):
        assert not {m.split(".")[0] for m in _imported_modules(path)} & project, path


@pytest.mark.parametrize("value", [
    "d0a08e8c493f9c94f29311604c9de1b4e8c8d4c06bd0c789af57f2d65bfec0f6",  # OrderFilled V1
    "d543adfd945773f1a62f74f0ee55a5e3b9b1a28262980ba90b1a89f2ea84d8ee",  # OrderFilled V2
    "4bfb41d5b3570defd03c39a9a4d8de6bd8b8982e",  # CTF exchange V1
    "e111180000d2663c0091e4f400237545b87b996b",  # CTF exchange V2
    "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef",  # Transfer
])
def test_the_vocabulary_has_one_home(value: str) -> None:
    homes = sorted(str(p.relative_to(ROOT))
                   for pkg in ("polyvocab", "simulator", "monitor", "experiments", "reports")
                   for p in (ROOT / pkg).rglob("*.py")
                   if value in p.read_text(encoding="utf-8").lower())
    assert homes == ["polyvocab/__init__.py"]


# -- one implementation per concept (issue 9 item 4) -------------------------------------
PACKAGES = ("polyvocab", "simulator", "monitor", "experiments", "reports")


def _definitions() -> list[tuple[str, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every class and module-level function of the source tree, with its file."""
    out: list[tuple[str, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef]] = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            where = str(path.relative_to(ROOT))
            out += [(where, n) for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
            out += [(where, n) for n in tree.body
                    if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    return out


def _builds_jsonrpc_request(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Dict) and any(
        isinstance(k, ast.Constant) and k.value == "jsonrpc" for k in n.keys)
        for n in ast.walk(node))


def _sends_http(node: ast.AST) -> bool:
    """A ``session.post(url, ...)`` (aiohttp, requests, httpx) or a ``urlopen(...)``."""
    for n in ast.walk(node):
        if not isinstance(n, ast.Call):
            continue
        name = (n.func.attr if isinstance(n.func, ast.Attribute)
                else n.func.id if isinstance(n.func, ast.Name) else "")
        if name == "urlopen" or (name == "post" and (n.args or n.keywords)):
            return True
    return False


def test_there_is_one_token_bucket() -> None:
    buckets = sorted(f"{where}:{n.name}" for where, n in _definitions()
                     if isinstance(n, ast.ClassDef) and "bucket" in n.name.lower())
    assert buckets == ["polyvocab/policies.py:TokenBucket"]


def test_there_is_one_jsonrpc_http_client() -> None:
    # a class or function that both builds {"jsonrpc": ...} and POSTs it over HTTP is a
    # JSON-RPC HTTP client: the house has one (the recorder and reconcile use it too)
    clients = sorted(f"{where}:{n.name}" for where, n in _definitions()
                     if _builds_jsonrpc_request(n) and _sends_http(n))
    assert clients == ["polyvocab/jsonrpc_http.py:JsonRpcHttpClient"]
