"""el.load_run: a CLI run folder rebuilt in Python; a loaded run continues to exactly the
parameters of the uninterrupted run; one-line errors for folders that are not runs."""

import json

import jax
import numpy as np
import pytest
from flax import serialization

import evojax_lab as el
from evojax_lab import cli

COMMON = ["--task", "CartPole-v1", "--pop-size", "16", "--hidden", "8", "--eval-episodes", "2",
          "--final-episodes", "4", "--log-every", "2", "--no-progress"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    straight, part = root / "straight", root / "part"
    assert cli.main(["train", *COMMON, "--generations", "4", "--run-dir", str(straight)]) == 0
    assert cli.main(["train", *COMMON, "--generations", "2", "--checkpoint-every", "2",
                     "--run-dir", str(part)]) == 0
    return straight, part


def leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_loaded_run_continues_to_the_uninterrupted_parameters(folders):
    straight, part = folders
    run = el.load_run(part)
    assert run.generation == 2 and run.metrics["generation"].tolist() == [1, 2]
    result = run.resume(generations=4)
    expected = serialization.from_bytes(result.solution,
                                        (straight / "params.msgpack").read_bytes())
    for got, want in zip(leaves(result.solution), leaves(expected), strict=True):
        assert got.dtype == want.dtype and np.array_equal(got, want)
    # the folder's files continue too: the same four rows as the straight run's
    assert rows(part / "metrics.jsonl") == rows(straight / "metrics.jsonl")
    assert el.load_run(part).generation == 4
    assert el.runs.read_config(part)["generations"] == 4  # the folder says how long it is now


def test_load_run_gives_back_what_the_run_wrote(folders):
    straight, _ = folders
    run = el.load_run(straight)
    config = json.loads((straight / "config.json").read_text())
    assert run.config == config and run.generation == 4
    assert (run.task.name, run.strategy.pop_size, run.trainer.generations) == (
        "CartPole-v1", 16, 4)
    written = [r["mean_fitness"] for r in rows(straight / "metrics.jsonl")]
    np.testing.assert_array_equal(run.metrics["mean_fitness"], np.float32(written))
    saved = serialization.from_bytes(run.solution, (straight / "params.msgpack").read_bytes())
    for got, want in zip(leaves(run.solution), leaves(saved), strict=True):
        assert np.array_equal(got, want)
    # the policy and task rebuild the run's network: the solution plays
    ret, length, _ = jax.jit(lambda k: el.rollout(k, run.task, run.policy, run.solution))(
        jax.random.PRNGKey(0))
    assert 1 <= int(length) <= 500 and float(ret) == int(length)


def test_a_folder_without_a_checkpoint_loads_its_final_parameters(folders, tmp_path):
    straight, _ = folders
    copy = tmp_path / "no_checkpoint"
    copy.mkdir()
    for name in ("config.json", "params.msgpack", "metrics.jsonl"):
        (copy / name).write_bytes((straight / name).read_bytes())
    run = el.load_run(copy)
    assert run.carry is None and run.generation == 4
    for got, want in zip(leaves(run.solution), leaves(el.load_run(straight).solution),
                         strict=True):
        assert np.array_equal(got, want)
    with pytest.raises(ValueError, match="checkpoint.ckpt not found: nothing to resume"):
        run.resume()


@pytest.mark.parametrize("make, message", [
    (lambda d: None, "config.json not found: .* is not a run folder"),
    (lambda d: (d / "config.json").write_text("{not json"), "config.json is not valid JSON"),
    (lambda d: (d / "config.json").write_text('{"task": "CartPole-v1"}'),
     "is not a run configuration \\(missing strategy, seed, eval_episodes\\)"),
])
def test_folders_that_are_not_runs_are_one_line_errors(tmp_path, make, message):
    make(tmp_path)
    with pytest.raises(ValueError, match=message) as err:
        el.load_run(tmp_path)
    assert "\n" not in str(err.value)


def test_a_genome_strategy_cannot_change_its_length(folders):
    straight, _ = folders
    config = dict(el.runs.read_config(straight), strategy="deep_ga", truncation=4, elites=1,
                  validation_episodes=0)
    with pytest.raises(ValueError, match="generations cannot change for deep_ga"):
        el.runs.build(config, generations=8)


# ------------------------------------------------------------------ RunConfig, --config, info
def test_run_config_round_trips_and_resolves_like_the_registry():
    config = el.runs.RunConfig.resolve("CartPole-v1", "openai_es", seed=3, sigma=0.1,
                                       eval_episodes=2, record=("fitness",))
    assert config.settings == {**el.strategies.settings("openai_es", "CartPole-v1"),
                               "sigma": 0.1}
    assert (config.eval_episodes, config.record, config.version) == (2, ("fitness",), 1)
    assert el.runs.RunConfig.from_json(config.to_json()) == config
    assert el.runs.RunConfig.from_dict(json.loads(config.to_json())) == config
    with pytest.raises(ValueError, match="version 2 was written by a newer evojax_lab"):
        el.runs.RunConfig.from_dict({**config.to_dict(), "version": 2})
    with pytest.raises(ValueError, match="lacks openai_es's setting\\(s\\) sigma"):
        el.runs.RunConfig.from_dict({k: v for k, v in config.to_dict().items() if k != "sigma"})


def test_a_folder_config_is_a_run_config(folders):
    straight, _ = folders
    config = el.runs.RunConfig.load(straight)
    assert config.to_dict() == {k: v for k, v in el.runs.read_config(straight).items()
                                if k not in ("devices", "processes")}


def test_train_config_reruns_a_saved_run(folders, tmp_path, capsys):
    straight, _ = folders
    again = tmp_path / "again"
    assert cli.main(["train", "--config", str(straight / "config.json"), "--run-dir",
                     str(again), "--no-progress", "--final-episodes", "4"]) == 0
    assert (again / "params.msgpack").read_bytes() == (straight / "params.msgpack").read_bytes()
    assert rows(again / "metrics.jsonl") == rows(straight / "metrics.jsonl")
    capsys.readouterr()
    assert cli.main(["train", "--config", str(straight), "--sigma", "0.3"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--sigma cannot be given with --config" in err and len(err.splitlines()) == 1
    assert cli.main(["train", "--config", str(tmp_path / "missing.json")]) == 2
    assert "missing.json not found" in capsys.readouterr().err


def test_info_reports_config_progress_and_checkpoint(folders, tmp_path, capsys):
    straight, part = folders
    assert cli.main(["info", str(straight), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["config"] == el.runs.read_config(straight)
    assert info["checkpoint"]["generation"] == info["checkpoint"]["generations"] == 4
    assert info["last_metrics"] == rows(straight / "metrics.jsonl")[-1]
    assert cli.main(["info", str(straight)]) == 0
    text = capsys.readouterr().out
    assert "generation 4 of 4 (finished)" in text and "CartPole-v1" in text
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for name in ("config.json", "checkpoint.ckpt"):
        (damaged / name).write_bytes((straight / name).read_bytes())
    with open(damaged / "checkpoint.ckpt", "r+b") as f:
        f.truncate(100)
    before = (damaged / "checkpoint.ckpt").read_bytes()
    assert cli.main(["info", str(damaged)]) == 0
    assert "checkpoint   UNREADABLE:" in capsys.readouterr().out
    assert (damaged / "checkpoint.ckpt").read_bytes() == before  # info changes nothing
    assert cli.main(["info", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip()
    assert "is not a run folder" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("damage, problem", [
    (lambda data: b"", "is empty"),
    (lambda data: b"PK\x03\x04" + data[4:], "is not an evojax_lab checkpoint"),
    (lambda data: data[: len(data) // 2], "is truncated"),
])
def test_a_damaged_checkpoint_is_a_one_line_error_and_stays(folders, tmp_path, damage, problem):
    straight, _ = folders
    copy = tmp_path / "damaged"
    copy.mkdir()
    for name in ("config.json", "checkpoint.ckpt"):
        (copy / name).write_bytes((straight / name).read_bytes())
    bad = damage((copy / "checkpoint.ckpt").read_bytes())
    (copy / "checkpoint.ckpt").write_bytes(bad)
    with pytest.raises(ValueError, match=f"checkpoint.ckpt {problem}") as err:
        el.load_run(copy)
    assert "\n" not in str(err.value)
    assert (copy / "checkpoint.ckpt").read_bytes() == bad  # nothing rewritten
    assert sorted(p.name for p in copy.iterdir()) == ["checkpoint.ckpt", "config.json"]


def test_keep_leaves_the_latest_checkpoints_and_each_resumes(folders, tmp_path, capsys):
    straight, _ = folders
    run = tmp_path / "kept"
    assert cli.main(["train", *COMMON, "--generations", "4", "--checkpoint-every", "1",
                     "--log-every", "1", "--keep", "2", "--run-dir", str(run)]) == 0
    names = sorted(p.name for p in run.glob("checkpoint*.ckpt"))
    assert names == ["checkpoint.00000003.ckpt", "checkpoint.ckpt"]
    generation = el.checkpoint.info(run / "checkpoint.00000003.ckpt")["metadata"]["generation"]
    assert generation == 3 and el.load_run(run).generation == 4
    capsys.readouterr()
    assert cli.main(["info", str(run)]) == 0
    assert "kept         checkpoint.00000003.ckpt" in capsys.readouterr().out
    # a kept checkpoint is a whole one: put back as the latest, the run resumes from it and
    # ends where the straight run ends
    (run / "checkpoint.ckpt").write_bytes((run / "checkpoint.00000003.ckpt").read_bytes())
    resumed = el.load_run(run)
    assert resumed.generation == 3
    result = resumed.resume(every=1, block=1)
    expected = serialization.from_bytes(result.solution,
                                        (straight / "params.msgpack").read_bytes())
    for got, want in zip(leaves(result.solution), leaves(expected), strict=True):
        assert np.array_equal(got, want)
    assert sorted(p.name for p in run.glob("checkpoint*.ckpt")) == [
        "checkpoint.00000003.ckpt", "checkpoint.ckpt"]  # resume keeps 3 by default


def test_keep_one_keeps_only_the_latest(tmp_path):
    run = tmp_path / "one"
    assert cli.main(["train", *COMMON, "--generations", "3", "--checkpoint-every", "1",
                     "--log-every", "1", "--keep", "1", "--run-dir", str(run)]) == 0
    assert [p.name for p in run.glob("checkpoint*.ckpt")] == ["checkpoint.ckpt"]


def test_an_obs_norm_run_loads_its_statistics_with_or_without_a_checkpoint(tmp_path):
    run = tmp_path / "norm"
    assert cli.main(["train", *COMMON, "--generations", "2", "--obs-norm",
                     "--run-dir", str(run)]) == 0
    saved = serialization.from_bytes(
        el.policies.normalization.obs_stats_init((4,)), (run / "obs_stats.msgpack").read_bytes())
    with_checkpoint = el.load_run(run)
    (run / "checkpoint.ckpt").unlink()
    without = el.load_run(run)
    for stats in (with_checkpoint.obs_stats, without.obs_stats):
        assert int(np.asarray(stats.count)) > 0
        for got, want in zip(leaves(stats), leaves(saved), strict=True):
            assert np.array_equal(got, want)
    (run / "obs_stats.msgpack").unlink()
    with pytest.raises(ValueError, match="obs_stats.msgpack not found: the run was trained with "
                                         "--obs-norm"):
        el.load_run(run)


def test_a_checkpoint_of_another_seed_is_refused(folders, tmp_path):
    straight, _ = folders
    copy = tmp_path / "other_seed"
    copy.mkdir()
    config = json.loads((straight / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "seed": config["seed"] + 1}))
    (copy / "checkpoint.ckpt").write_bytes((straight / "checkpoint.ckpt").read_bytes())
    with pytest.raises(el.checkpoint.CheckpointError, match="written by a run with another key"):
        el.load_run(copy)
