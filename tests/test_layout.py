"""The package's layout rules (docs: shared STYLE, issue 13), read from the source with ast:
one meaning per public name, small modules and functions, no DictConfig in library code.

Each allow-list names what still breaks a rule and why; an entry that no longer does is an
error too, so the lists only shrink.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "neuroseg"
ENTRY_POINTS = {"train", "evaluate", "predict", "prepare", "analyze", "synth", "export"}
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60

# Public names several modules may define, each for the same role.
SHARED_NAMES = {
    "main": "every entry point's @command function, run by python -m neuroseg.<name>",
}
# Modules and functions over the size limits, outside the analysis stage, being split elsewhere.
LONG_MODULES: dict[str, str] = {}
LONG_FUNCTIONS: dict[str, str] = {}
# Library modules that still take a DictConfig, being fixed with their stage's settings.
DICTCONFIG_USERS: dict[str, str] = {}


def modules() -> dict[str, ast.Module]:
    """{path relative to neuroseg/: parsed module} for every module of the package."""
    return {
        path.relative_to(PACKAGE).as_posix(): ast.parse(path.read_text(), str(path))
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def public_names(tree: ast.Module) -> set[str]:
    """Top-level public functions and classes, and UPPER_CASE constants, of a module."""
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                elements = target.elts if isinstance(target, ast.Tuple) else [target]
                names |= {
                    e.id
                    for e in elements
                    if isinstance(e, ast.Name) and re.fullmatch(r"[A-Z][A-Z0-9_]+", e.id)
                }
    return {name for name in names if not name.startswith("_")}


def is_settings_module(path: str) -> bool:
    """Entry points, cli.py, configs.py and */settings.py turn configs into settings."""
    return (
        (Path(path).stem in ENTRY_POINTS and "/" not in path)
        or path in ("cli.py", "configs.py")
        or path.endswith("settings.py")
    )


def defines_hydra_callback(tree: ast.Module) -> bool:
    """True when the module subclasses Hydra's Callback, whose hooks take a DictConfig."""
    imported = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "hydra.experimental.callback"
        for alias in node.names
        if alias.name == "Callback"
    }
    return any(
        isinstance(node, ast.ClassDef)
        and any(isinstance(base, ast.Name) and base.id in imported for base in node.bases)
        for node in ast.walk(tree)
    )


def imports_dictconfig(tree: ast.Module) -> bool:
    """True when the module imports omegaconf's DictConfig (for its signatures or otherwise)."""
    return any(
        isinstance(node, ast.ImportFrom)
        and (node.module or "").startswith("omegaconf")
        and any(alias.name == "DictConfig" for alias in node.names)
        for node in ast.walk(tree)
    )


def stale(allowed: dict[str, str], offenders: set[str]) -> list[str]:
    """Allow-list entries that no longer break their rule (remove them)."""
    return sorted(set(allowed) - offenders)


def test_no_two_modules_share_a_public_name() -> None:
    owners: dict[str, list[str]] = defaultdict(list)
    for path, tree in modules().items():
        for name in public_names(tree):
            owners[name].append(path)
    clashes = {n: p for n, p in owners.items() if len(p) > 1 and n not in SHARED_NAMES}
    assert not clashes, f"public names defined in several modules (rename one): {clashes}"
    unused = sorted(n for n in SHARED_NAMES if len(owners.get(n, [])) < 2)
    assert not unused, f"SHARED_NAMES entries no module shares any more: {unused}"


def test_modules_and_functions_stay_small() -> None:
    long_modules, long_functions = {}, {}
    for path, tree in modules().items():
        lines = (PACKAGE / path).read_text().count("\n")
        if lines > MAX_MODULE_LINES:
            long_modules[path] = lines
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions[f"{path}:{node.name}"] = length
    over = {p: n for p, n in long_modules.items() if p not in LONG_MODULES}
    assert not over, f"modules over {MAX_MODULE_LINES} lines (split them): {over}"
    over = {f: n for f, n in long_functions.items() if f not in LONG_FUNCTIONS}
    assert not over, f"functions over {MAX_FUNCTION_LINES} lines (split them): {over}"
    done = stale(LONG_MODULES, set(long_modules)) + stale(LONG_FUNCTIONS, set(long_functions))
    assert not done, f"allow-listed as too long but no longer are (remove them): {done}"


def test_library_modules_take_no_dictconfig() -> None:
    # Hydra callbacks (training/sweep.py) are exempt like cli.py: Hydra defines their hooks'
    # signatures with the run's DictConfig, so they read the config the way entry points do.
    users = {
        path
        for path, tree in modules().items()
        if not is_settings_module(path)
        and not defines_hydra_callback(tree)
        and imports_dictconfig(tree)
    }
    over = sorted(users - set(DICTCONFIG_USERS))
    assert not over, f"library modules importing DictConfig (take typed settings): {over}"
    done = stale(DICTCONFIG_USERS, users)
    assert not done, f"allow-listed DictConfig users that no longer import it: {done}"


def test_layout_rules_see_a_clash_a_long_function_and_a_dictconfig() -> None:
    clash = ast.parse("LIMIT = 3\ndef measure(): pass\nclass Source: pass\n_private = 1\n")
    assert public_names(clash) == {"LIMIT", "measure", "Source"}
    assert imports_dictconfig(ast.parse("from omegaconf import OmegaConf, DictConfig\n"))
    assert not imports_dictconfig(ast.parse("from omegaconf import OmegaConf\n"))
    assert is_settings_module("analyze.py") and is_settings_module("analysis/settings.py")
    assert not is_settings_module("analysis/report.py")
    callback = "from hydra.experimental.callback import Callback\nclass Hook(Callback): pass\n"
    assert defines_hydra_callback(ast.parse(callback))
    assert not defines_hydra_callback(ast.parse("class Hook(Callback): pass\n"))
