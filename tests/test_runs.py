"""el.load_run: a CLI run folder rebuilt in Python; a loaded run continues to exactly the
parameters of the uninterrupted run; one-line errors for folders that are not runs."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

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


def copy_run(source, target, config=None):
    """A folder with ``source``'s config.json (or ``config``) and checkpoints only."""
    target.mkdir()
    text = (source / "config.json").read_text() if config is None else json.dumps(config)
    (target / "config.json").write_text(text)
    shutil.copytree(el.storage.root(source), el.storage.root(target))
    return target


def snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def newest_manifest(folder):
    return el.storage.step_dir(folder, el.storage.steps(folder)[-1]) / "manifest.json"


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
    with pytest.raises(ValueError, match="checkpoints holds no checkpoint: nothing to resume"):
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
                                if k not in ("devices", "processes", "options")}


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
    damaged = copy_run(straight, tmp_path / "damaged")
    with open(newest_manifest(damaged), "r+b") as f:
        f.truncate(100)
    before = snapshot(damaged)
    assert cli.main(["info", str(damaged)]) == 0
    assert "checkpoint   UNREADABLE:" in capsys.readouterr().out
    assert snapshot(damaged) == before  # info changes nothing
    assert cli.main(["info", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip()
    assert "is not a run folder" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("damage, problem", [
    (lambda data: b"", "manifest.json is empty"),
    (lambda data: b"PK\x03\x04" + data[4:], "manifest.json is corrupted or truncated"),
    (lambda data: b'{"format": "zarr"}', "manifest.json is not an evojax_lab run checkpoint"),
    (lambda data: data[: len(data) // 2], "manifest.json is corrupted or truncated"),
])
def test_a_damaged_manifest_is_a_one_line_error_and_stays(folders, tmp_path, damage, problem):
    straight, _ = folders
    copy = copy_run(straight, tmp_path / "damaged")
    path = newest_manifest(copy)
    path.write_bytes(damage(path.read_bytes()))
    before = snapshot(copy)
    with pytest.raises(ValueError, match=problem) as err:
        el.load_run(copy)
    assert "\n" not in str(err.value) and str(path) in str(err.value)
    assert snapshot(copy) == before  # nothing rewritten or removed


def flip(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("part, damage, problem", [
    ("state", flip, "is corrupted: its sha256 does not match"),
    ("state", lambda p: p.write_bytes(p.read_bytes()[:-1]), "is corrupted"),
    ("state", lambda p: p.unlink(), "is missing"),
    ("metrics", flip, "is corrupted"),
])
def test_damaged_arrays_are_a_one_line_error_and_stay(folders, tmp_path, part, damage, problem):
    """A damaged file of the arrays orbax wrote (every file is hashed in the manifest: named
    before orbax decodes it) or of a metrics segment (its own checksum) is a one-line error."""
    straight, _ = folders
    copy = copy_run(straight, tmp_path / "damaged")
    step = el.storage.step_dir(copy, el.storage.steps(copy)[-1])
    folder = step / "state" if part == "state" else el.storage.root(copy) / "metrics"
    target = max((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    damage(target)
    before = snapshot(copy)
    with pytest.raises(el.checkpoint.CheckpointError, match=problem) as err:
        el.load_run(copy)
    assert "\n" not in str(err.value) and str(target) in str(err.value)
    assert snapshot(copy) == before


def test_keep_leaves_the_latest_checkpoints_and_each_resumes(folders, tmp_path, capsys):
    straight, _ = folders
    run = tmp_path / "kept"
    assert cli.main(["train", *COMMON, "--generations", "4", "--checkpoint-every", "1",
                     "--log-every", "1", "--keep", "2", "--run-dir", str(run)]) == 0
    assert el.storage.steps(run) == [3, 4]
    assert el.storage.manifest(run, 3)["generation"] == 3 and el.load_run(run).generation == 4
    capsys.readouterr()
    assert cli.main(["info", str(run)]) == 0
    assert "kept         00000003" in capsys.readouterr().out
    # a kept checkpoint is a whole one: with the newest step gone, the run resumes from it and
    # ends where the straight run ends
    shutil.rmtree(el.storage.step_dir(run, 4))
    resumed = el.load_run(run)
    assert resumed.generation == 3
    result = resumed.resume(every=1, block=1)
    expected = serialization.from_bytes(result.solution,
                                        (straight / "params.msgpack").read_bytes())
    for got, want in zip(leaves(result.solution), leaves(expected), strict=True):
        assert np.array_equal(got, want)
    assert el.storage.steps(run) == [3, 4]  # resume keeps 3 by default


def test_keep_one_keeps_only_the_latest(tmp_path):
    run = tmp_path / "one"
    assert cli.main(["train", *COMMON, "--generations", "3", "--checkpoint-every", "1",
                     "--log-every", "1", "--keep", "1", "--run-dir", str(run)]) == 0
    assert el.storage.steps(run) == [3]


def test_an_obs_norm_run_loads_its_statistics_with_or_without_a_checkpoint(tmp_path):
    run = tmp_path / "norm"
    assert cli.main(["train", *COMMON, "--generations", "2", "--obs-norm",
                     "--run-dir", str(run)]) == 0
    saved = serialization.from_bytes(
        el.policies.normalization.obs_stats_init((4,)), (run / "obs_stats.msgpack").read_bytes())
    with_checkpoint = el.load_run(run)
    shutil.rmtree(el.storage.root(run))
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
    config = json.loads((straight / "config.json").read_text())
    copy = copy_run(straight, tmp_path / "other_seed", {**config, "seed": config["seed"] + 1})
    with pytest.raises(el.checkpoint.CheckpointError, match="written by a run with another key"):
        el.load_run(copy)


def _as_unprivileged() -> list[str]:
    """A command prefix under which file permissions apply: none for a normal user; for root,
    ``setpriv`` dropping the capabilities that bypass them."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: permissions cannot be enforced")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search"]


def test_a_read_only_run_folder_loads_and_refuses_writes_in_one_line(folders, tmp_path):
    straight, _ = folders
    ro = copy_run(straight, tmp_path / "ro")
    shutil.copy(straight / "metrics.jsonl", ro / "metrics.jsonl")
    before = snapshot(ro)
    script = f"""
import json
import evojax_lab as el
from evojax_lab import cli
ro = {str(ro)!r}
out = {{"resume": cli.main(["train", "--resume", ro, "--no-progress"]),
        "info": cli.main(["info", ro]),
        "new": cli.main(["train", "--generations", "1", "--run-dir", ro + "/new",
                         "--no-progress"]),
        "generation": el.load_run(ro).generation}}
try:
    el.load_run(ro).resume(every=1, block=1)
except PermissionError as err:
    out["api"] = str(err)
print(json.dumps(out))
"""
    paths = [p for p in ro.rglob("*")] + [ro]
    for p in paths:
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        done = subprocess.run([*_as_unprivileged(), sys.executable, "-c", script],
                              capture_output=True, text=True, timeout=300)
    finally:
        for p in paths:
            p.chmod(0o755 if p.is_dir() else 0o644)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["resume"] == out["new"] == 2 and out["info"] == 0 and out["generation"] == 4
    assert f"{ro} is not writable" in out["api"]
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 2 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert f"cannot resume: {ro} is not writable" in errors[0]
    assert f"{ro}/new" in errors[1] and "Permission denied" in errors[1]
    assert snapshot(ro) == before  # nothing written, nothing removed


def test_a_run_folder_whose_config_was_edited_is_refused(folders, tmp_path, capsys):
    """config.json says sigma 0.07, the checkpoint was written with 0.05: load_run and
    train --resume refuse in one line naming it, and change nothing."""
    _, part = folders
    config = json.loads((part / "config.json").read_text())
    assert config["sigma"] == 0.05
    copy = copy_run(part, tmp_path / "edited", {**config, "sigma": 0.07})
    before = snapshot(copy)
    with pytest.raises(el.checkpoint.CheckpointError, match="sigma 0.05, this run has 0.07"):
        el.load_run(copy)
    assert cli.main(["train", "--resume", str(copy), "--generations", "4"]) == 2
    err = capsys.readouterr().err.strip()
    assert "sigma 0.05, this run has 0.07" in err and len(err.splitlines()) == 1
    assert snapshot(copy) == before


def test_a_fresh_train_into_a_run_folder_refuses_or_moves_it_aside(folders, tmp_path, capsys):
    straight, _ = folders
    run = tmp_path / "run"
    shutil.copytree(straight, run)
    before = snapshot(run)
    assert cli.main(["train", *COMMON, "--generations", "2", "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{run} already holds a run" in err and "--overwrite" in err
    assert len(err.splitlines()) == 1 and snapshot(run) == before
    (tmp_path / "file").write_text("x")
    assert cli.main(["train", *COMMON, "--run-dir", str(tmp_path / "file")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert cli.main(["train", "--resume", str(run), "--overwrite"]) == 2
    assert "--overwrite cannot be given with --resume" in capsys.readouterr().err
    # --overwrite: the old run moves aside whole, the new one gets the folder
    assert cli.main(["train", *COMMON, "--generations", "2", "--run-dir", str(run),
                     "--overwrite"]) == 0
    aside = tmp_path / "run.replaced-1"
    assert f"moved the run in {run} aside to {aside}" in capsys.readouterr().err
    assert snapshot(aside) == before
    assert el.load_run(run).generation == 2 and el.storage.steps(run) == [2]


def test_default_run_folders_are_unique_when_started_together(tmp_path, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.chdir(tmp_path)
    with ThreadPoolExecutor(8) as pool:
        folders = list(pool.map(lambda _: cli.train._new_default_folder("Task", "es"), range(8)))
    assert len(set(folders)) == 8 and all(f.is_dir() for f in folders)
    assert all(f.parent == Path("runs") and f.name.startswith("Task_es_") for f in folders)


def test_a_resume_keeps_the_saved_file_options(tmp_path):
    """--checkpoint-every, --log-every and --keep are saved in config.json and a resume that
    does not give them again keeps them (they used to fall back to 50 / 10 / 3)."""
    run = tmp_path / "opts"
    assert cli.main(["train", *COMMON, "--generations", "2", "--checkpoint-every", "1",
                     "--log-every", "1", "--keep", "5", "--run-dir", str(run)]) == 0
    options = json.loads((run / "config.json").read_text())["options"]
    assert options["checkpoint_every"] == 1 and options["log_every"] == 1
    assert cli.main(["train", "--resume", str(run), "--generations", "4",
                     "--no-progress"]) == 0
    assert el.storage.steps(run) == [1, 2, 3, 4]  # every 1 generation, 5 kept


def test_train_into_the_default_relative_folder(tmp_path, monkeypatch):
    """No --run-dir: runs/<task>_<strategy>_<time>, a relative path (as the README's main
    command), checkpointed and loadable."""
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", *COMMON, "--generations", "2"]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    assert el.storage.steps(Path("runs") / run.name) == [2]
    assert el.load_run(Path("runs") / run.name).generation == 2
