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
