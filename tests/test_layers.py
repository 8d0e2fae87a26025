"""The package layers hold: every import inside `pipeline/` points down the stage order, none up or around."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "pipeline"
ORDER = ["core", "forecast", "perception", "events", "learning", "outputs", "io", "apps", "api", "__init__"]


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return found


def _layer(path: Path) -> str:
    rel = path.relative_to(ROOT).parts
    return rel[0] if len(rel) > 1 else path.stem


def test_every_module_belongs_to_a_known_layer():
    assert {_layer(p) for p in ROOT.rglob("*.py")} <= set(ORDER)


def test_imports_point_down_the_stage_order_only():
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        me = ORDER.index(_layer(path))
        for mod in _imports(path):
            parts = mod.split(".")
            if parts[0] == "pipeline" and len(parts) > 1:
                target = parts[1] if parts[1] in ORDER else "__init__"
                if ORDER.index(target) > me:
                    wrong.append(f"{path.relative_to(ROOT.parent)} imports {mod}")
    assert wrong == []


def test_only_the_perception_layer_touches_the_detector_library():
    wrong = [f"{p.relative_to(ROOT.parent)} imports {m}" for p in sorted(ROOT.rglob("*.py"))
             for m in _imports(p) for lib, layers in [("ultralytics", ("perception",))]
             if m.split(".")[0] == lib and _layer(p) not in layers]
    assert wrong == []


def _cli_imports(path: Path) -> set[str]:
    """The modules of the CLI package (pipeline/apps/cli/) that `path` imports, by name."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module == "pipeline.apps.cli":
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pipeline.apps.cli."):
            found.add(node.module.rsplit(".", 1)[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.rsplit(".", 1)[1] for a in node.names if a.name.startswith("pipeline.apps.cli.")}
    return found


def test_the_cli_is_the_top_of_apps_and_its_verbs_stand_alone():
    """Nothing in pipeline/ imports the CLI (apps may import every layer below, the CLI every app); each verb's
    module shares only cli/common.py, never another verb's module."""
    cli = ROOT / "apps" / "cli"
    outside = [str(p.relative_to(ROOT.parent)) for p in sorted(ROOT.rglob("*.py"))
               if cli not in p.parents and any(m.startswith("pipeline.apps.cli") for m in _imports(p))]
    assert outside == []
    verbs = [p for p in sorted(cli.glob("*.py")) if p.stem not in ("__init__", "__main__", "common")]
    assert len(verbs) == 9
    assert {p.stem: _cli_imports(p) for p in verbs} == {p.stem: {"common"} for p in verbs}
