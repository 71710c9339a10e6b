"""Small helpers shared by the repository-level tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMPONENTS = REPO / "components"
HEAVY_MODULES = ("tensorflow", "tensorflow_data_validation", "sklearn", "kserve", "apache_beam", "tfx_bsl")


def component_modules() -> list[str]:
    """Installed module names of every component.py under components/."""
    names = []
    for path in sorted(COMPONENTS.rglob("component.py")):
        rel = path.relative_to(COMPONENTS).with_suffix("")
        names.append("kfp_tabular.components." + ".".join(rel.parts))
    return names


def heavy_modules_after(code: str) -> list[str]:
    """Run ``code`` in a fresh interpreter and return the heavy modules it left in sys.modules."""
    probe = code + "\nimport sys\nprint(','.join(sorted({m.split('.')[0] for m in sys.modules} & set(%r))))" % (
        HEAVY_MODULES,
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr
    last = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    return [m for m in last.split(",") if m]
