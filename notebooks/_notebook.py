"""What every notebook generator (``make_*.py``) shares: the install cell every notebook starts
with, and writing the notebook."""

from pathlib import Path

import nbformat as nbf


def install_cell(extras: str = "") -> nbf.NotebookNode:
    """The first code cell: installs evojax_lab (with ``extras``) from the clone the notebook
    sits in when the kernel does not have it (a fresh Jupyter or Colab runtime); a no-op
    otherwise."""
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


def write(cells: list, name: str, extras: str = "") -> None:
    """Write ``notebooks/<name>``: the first cell (a markdown title), the install cell, the rest
    (unexecuted: ``python notebooks/execute.py`` runs it in place)."""
    nb = nbf.v4.new_notebook(cells=[cells[0], install_cell(extras), *cells[1:]], metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbf.write(nb, Path(__file__).with_name(name))
