"""matplotlib for the plotting scripts in tools/: used if installed, else installed once into
a virtual environment under the user's cache (~/.cache/overlay/plot-venv), and the calling
script run again there. OVERLAY_PLOT_NO_INSTALL=1 refuses to install."""

import os
import subprocess
import sys


def ensure_matplotlib(script):
    """Returns if matplotlib imports; otherwise re-executes `script` (a path) under the
    virtual environment, installing it first when needed."""
    name = os.path.basename(script)
    try:
        import matplotlib  # noqa: F401

        return
    except ImportError:
        pass
    if os.environ.get("OVERLAY_PLOT_VENV_ACTIVE"):
        sys.exit(f"{name}: matplotlib is still missing after installing it; giving up")
    if os.environ.get("OVERLAY_PLOT_NO_INSTALL"):
        sys.exit(f"{name}: matplotlib is not installed (python3 -m pip install matplotlib)")
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    venv = os.path.join(cache, "overlay", "plot-venv")
    python = os.path.join(venv, "bin", "python3")
    if not os.path.exists(python):
        print(f"{name}: installing matplotlib into {venv} (first use)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    check = subprocess.run([python, "-c", "import matplotlib"], capture_output=True)
    if check.returncode != 0:
        subprocess.run([python, "-m", "pip", "install", "--quiet", "matplotlib"], check=True)
    env = dict(os.environ, OVERLAY_PLOT_VENV_ACTIVE="1")
    os.execve(python, [python, os.path.abspath(script)] + sys.argv[1:], env)
