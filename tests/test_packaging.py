"""The package as installed: license, typing marker, version, dependency bounds, optional
extras that name themselves when missing, and a core import that loads none of them."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

import evojax_lab as el
from evojax_lab import cli
from evojax_lab.core import extras

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
HEAVY = ("brax", "mujoco", "sklearn", "scikit-learn", "evosax")


def test_license_version_and_typing_marker():
    assert PROJECT["license"]["text"] == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert PROJECT["version"] == el.__version__ == "0.2.0"
    assert (Path(el.__file__).parent / "py.typed").is_file()
    assert (ROOT / "CHANGELOG.md").is_file()


def test_core_dependencies_are_bounded_and_light():
    for requirement in PROJECT["dependencies"]:
        name = re.split(r"[<>=!~ ;\[]", requirement, maxsplit=1)[0]
        assert name not in HEAVY, f"{name} belongs in an extra"
        if name in ("jax", "jaxlib", "flax", "optax", "chex", "orbax-checkpoint", "gymnax"):
            assert ">=" in requirement and "<" in requirement, requirement
        assert "==" not in requirement, f"{requirement}: a lower bound, not a pin"
    extras_ = PROJECT["optional-dependencies"]
    for extra in ("brax", "digits", "evosax", "tensorboard", "wandb", "all", "test"):
        assert extra in extras_, extra


def test_importing_the_package_loads_no_optional_dependency():
    code = ("import sys, evojax_lab as el; el.tasks.make('CartPole-v1'); "
            f"print([m for m in {HEAVY!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.fixture
def without(monkeypatch):
    """Make packages look uninstalled (importing them fails as a missing module does)."""
    def hide(*names):
        for name in names:
            for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
                monkeypatch.delitem(sys.modules, loaded)
            monkeypatch.setitem(sys.modules, name, None)
    return hide


def test_a_missing_extra_is_named(without):
    without("sklearn")
    with pytest.raises(extras.MissingExtra, match=r"pip install 'evojax_lab\[digits\]'"):
        el.tasks.make("digits", apply_fn=lambda params, x: x)


@pytest.mark.parametrize("argv, extra", [
    (["--task", "brax/inverted_pendulum"], "brax"),
    (["--strategy", "evosax:CMA_ES"], "evosax"),
])
def test_the_cli_names_a_missing_extra_in_one_line(argv, extra, without, tmp_path, capsys):
    without(extra)
    code = cli.main(["train", *argv, "--no-progress", "--run-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert f"{extra} is not installed" in err and f"pip install 'evojax_lab[{extra}]'" in err
    assert not (tmp_path / "r").exists()
