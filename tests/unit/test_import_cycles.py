"""Every module of services/ imports first, on its own: an import cycle must not hide behind the order in which
the app, the CLI or the test suite happen to load things (a worker or a bench that starts elsewhere would fail)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import importlib, json, pkgutil, sys, warnings
warnings.simplefilter("ignore")
import models  # models import no services: loaded once, as their tables may be defined only once
import services
names = sorted(m.name for m in pkgutil.walk_packages(services.__path__, "services."))
failed = {}
for name in names:
    for loaded in [k for k in sys.modules if k == "services" or k.startswith("services.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except ImportError as exc:
        failed[name] = str(exc)
print(json.dumps({"checked": len(names), "failed": failed}))
"""


def test_each_service_module_imports_first_on_its_own() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["checked"] > 80 and report["failed"] == {}, report["failed"]
