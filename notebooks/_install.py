"""The first code cell of every notebook: installs evojax_lab, from the clone the notebook sits
in, when the kernel does not have it (a fresh Jupyter or Colab runtime); a no-op otherwise."""

import nbformat as nbf


def install_cell(extras: str = "") -> nbf.NotebookNode:
    target = f"..[{extras}]" if extras else ".."
    return nbf.v4.new_code_cell(
        "# Install evojax_lab from this clone if the kernel lacks it (nothing happens otherwise).\n"
        "import importlib.util\n"
        "import subprocess\n"
        "import sys\n\n"
        'if importlib.util.find_spec("evojax_lab") is None:\n'
        f'    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "{target}"],\n'
        "                   check=True)"
    )
