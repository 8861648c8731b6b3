"""tinygrad_edu works without PyTorch: importing every one of its modules, in a fresh process,
never loads torch (twins live in models/, parity checks in tests/)."""
import subprocess
import sys

CODE = """
import importlib, pkgutil, sys
import tinygrad_edu
for m in pkgutil.walk_packages(tinygrad_edu.__path__, "tinygrad_edu."):
    if not m.name.endswith("__main__"):
        importlib.import_module(m.name)
    assert "torch" not in sys.modules, f"importing {m.name} loaded torch"
print("ok")
"""


def test_no_module_of_tinygrad_edu_loads_torch():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True,
                         timeout=300, check=False)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
