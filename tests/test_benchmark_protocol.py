"""The held-out protocol of benchmarks/_common.py: frozen configs and the exact test."""

import argparse
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "benchmarks" / "configs" / "hard_maze_ga_vs_ga_ns.json"


@pytest.fixture(scope="module")
def common():
    spec = importlib.util.spec_from_file_location("bench_common",
                                                  ROOT / "benchmarks" / "_common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _parser(names):
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    parser.add_argument("--no-save", action="store_true")
    for name in names:
        parser.add_argument("--" + name.replace("_", "-"), dest=name)
    return parser


def test_fisher_one_sided_matches_the_hypergeometric_tail(common):
    # 4/5 vs 0/5: P(X >= 4), X ~ Hypergeometric(10 runs, 4 successes, 5 drawn) = 6 / 252
    assert common.fisher_one_sided(4, 5, 0, 5) == pytest.approx(6 / 252)
    # 2/3 vs 1/3: P(X >= 2) with 3 successes among 6, 3 drawn = (9 + 1) / 20
    assert common.fisher_one_sided(2, 3, 1, 3) == pytest.approx(10 / 20)


def test_a_committed_config_sets_the_defaults(common):
    names = list(json.loads(CONFIG.read_text()))
    parser = _parser(names)
    frozen = common.frozen_config(parser, ["--config", str(CONFIG), "--no-save"])
    assert frozen["path"] == str(CONFIG) and frozen["commit"]
    args = parser.parse_args(["--config", str(CONFIG)])
    assert args.first_seed == 100 and args.seeds == 10


def test_a_frozen_setting_cannot_be_given_or_edited(common, tmp_path):
    names = list(json.loads(CONFIG.read_text()))
    with pytest.raises(SystemExit, match="freezes the settings: --seeds cannot be given with it"):
        common.frozen_config(_parser(names), ["--config", str(CONFIG), "--seeds", "3"])
    loose = tmp_path / "loose.json"  # never committed
    loose.write_text(CONFIG.read_text())
    with pytest.raises(SystemExit, match="must be committed as it is"):
        common.frozen_config(_parser(names), ["--config", str(loose)])
    with pytest.raises(SystemExit, match="not options of this script: methods"):
        common.frozen_config(_parser([n for n in names if n != "methods"]),
                             ["--config", str(CONFIG)])


def test_bootstrap_interval_of_a_mean_difference(common):
    # constant arms: every resample has the same means, the interval is the difference itself
    assert common.bootstrap_mean_difference([5.0, 5.0, 5.0], [3.0, 3.0]) == (2.0, 2.0)
    low, high = common.bootstrap_mean_difference([4.0, 6.0, 5.0, 7.0, 3.0], [3.0] * 5)
    assert low < 2.0 < high  # contains the observed difference
    assert 0.0 <= low and high <= 4.0  # a resampled mean of the first arm lies in [3, 7]
    assert common.bootstrap_mean_difference([4.0, 6.0], [3.0, 3.0]) == \
        common.bootstrap_mean_difference([4.0, 6.0], [3.0, 3.0])  # fixed seed: reproducible


def test_git_revision_ignores_what_benchmarks_write(common, tmp_path, monkeypatch):
    """A section's commit: benchmark outputs (RESULTS.md, pictures, a run's JSON) left changed
    keep it clean; code or a frozen config changed make it '+local changes'."""
    import subprocess

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    files = ["benchmarks/RESULTS.md", "benchmarks/run.png", "benchmarks/run.json",
             "benchmarks/configs/frozen.json", "benchmarks/script.py"]
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("a\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    monkeypatch.setattr(common, "ROOT", tmp_path)
    clean = common.git_revision()
    assert clean and "+" not in clean
    for name in files[:3]:
        (tmp_path / name).write_text("b\n")
    assert common.git_revision() == clean
    for name in files[3:]:
        git("checkout", "-q", "--", *files[:3])
        (tmp_path / name).write_text("b\n")
        assert common.git_revision() == clean + "+local changes", name
        git("checkout", "-q", "--", name)


def test_train_to_frames_measures_each_mark_once(common):
    """30 frames a generation, marks 50, 60 and 100: generation 2 (60 frames) passes 50 and 60
    and is measured once for both, generation 4 (120 frames) passes 100; nothing after."""

    class Trainer:
        def run(self, carry, n):
            assert n == 1
            import numpy as np

            return carry + 1, {"steps": np.array([30.0 * (carry + 1)]),
                               "best_fitness": np.array([float(carry)])}

    measured = []

    def measure(k, carry):
        measured.append((k, carry))
        return {"score": 10.0 * carry}

    run = common.train_to_frames(Trainer(), 0, [50, 60, 100], measure,
                                 keep=lambda m: {"steps": float(m["steps"])})
    assert measured == [(0, 2), (2, 4)]
    assert run["carry"] == 4
    assert [g["steps"] for g in run["generations"]] == [30.0, 60.0, 90.0, 120.0]
    assert run["checkpoints"] == [
        {"mark": 50, "frames": 60.0, "generation": 2, "score": 20.0},
        {"mark": 60, "frames": 60.0, "generation": 2, "score": 20.0},
        {"mark": 100, "frames": 120.0, "generation": 4, "score": 40.0},
    ]
