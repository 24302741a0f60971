"""The evojax-lab command line: a tiny training run end to end, replay, and one-line errors."""

import json
import subprocess
import sys

import numpy as np
import pytest
from flax import serialization

from evojax_lab import cli


def _rescore(run_dir) -> float:
    """The final score of a run folder recomputed from its files: the parameters in
    params.msgpack played for ``final_episodes`` episodes with the key the CLI documents for it
    (``fold_in(PRNGKey(seed), 10_000_019)``, split per episode). A summary that scores other
    parameters, or a made-up number, disagrees."""
    import jax

    import evojax_lab as el

    run = el.load_run(run_dir)
    params = serialization.from_bytes(run.solution, (run_dir / "params.msgpack").read_bytes())
    summary = json.loads((run_dir / "summary.json").read_text())
    keys = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(run.config["seed"]),
                                               10_000_019), summary["final_episodes"])
    returns = [float(el.rollout(k, run.task, run.policy, params)[0]) for k in keys]
    return float(np.mean(returns))


def _run(*args):
    return subprocess.run(
        [sys.executable, "-m", "evojax_lab.cli", *args], capture_output=True, text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("run") / "cartpole"
    code = cli.main([
        "train", "--task", "CartPole-v1", "--generations", "4", "--pop-size", "16",
        "--hidden", "8", "--eval-episodes", "2", "--final-episodes", "10", "--log-every", "2",
        "--run-dir", str(path), "--no-progress",
    ])
    assert code == 0
    return path


def test_train_writes_run_folder(run_dir, capsys):
    for name in ("config.json", "metrics.jsonl", "curve.png", "params.msgpack", "summary.json"):
        assert (run_dir / name).is_file(), name
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["generation"] for r in rows] == [1, 2, 3, 4]
    for key in ("best_fitness", "mean_fitness", "solution_fitness", "steps", "num_nan"):
        assert key in rows[0]
    steps = [r["steps"] for r in rows]
    assert all(b > a for a, b in zip(steps, steps[1:], strict=False))  # cumulative env steps grow
    # the PNG is a real PNG
    assert (run_dir / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["final_episodes"] == 10
    assert summary["final_mean_return"] == pytest.approx(_rescore(run_dir), rel=1e-6)


def test_params_are_msgpack_not_pickle(run_dir):
    data = (run_dir / "params.msgpack").read_bytes()
    state = serialization.msgpack_restore(data)
    leaves = []

    def walk(x):
        if isinstance(x, dict):
            for v in x.values():
                walk(v)
        else:
            leaves.append(np.asarray(x))

    walk(state)
    # 4 -> 8 -> 2 MLP: 4*8 + 8 + 8*2 + 2 parameters
    assert sum(leaf.size for leaf in leaves) == 4 * 8 + 8 + 8 * 2 + 2


def test_summary_line_and_replay(run_dir):
    out = _run("replay", str(run_dir), "--episodes", "3")
    assert out.returncode == 0, out.stderr
    assert "mean return" in out.stdout and "over 3 episodes" in out.stdout


def test_train_summary_line_printed(tmp_path):
    out = _run("train", "--generations", "1", "--pop-size", "8", "--hidden", "4",
               "--eval-episodes", "0", "--final-episodes", "10", "--no-progress",
               "--run-dir", str(tmp_path / "r"))
    assert out.returncode == 0, out.stderr
    last = out.stdout.strip().splitlines()[-1]
    assert "solution mean return" in last and "over 10 episodes" in last


def test_help_describes_every_option(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for action in cli.build_parser()._subparsers._group_actions[0].choices["train"]._actions:
        for option in action.option_strings:
            assert option in text
        assert action.help, f"option {action.option_strings} has no help text"


def test_deep_ga_writes_a_genome_that_replays(tmp_path, capsys):
    run = tmp_path / "ga"
    code = cli.main([
        "train", "--strategy", "deep_ga", "--generations", "3", "--pop-size", "16",
        "--truncation", "4", "--validation-episodes", "2", "--hidden", "8",
        "--eval-episodes", "0", "--final-episodes", "10", "--run-dir", str(run),
        "--no-progress",
    ])
    assert code == 0
    summary_line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "elite genome" in summary_line and "x smaller" in summary_line
    data = (run / "elite.genome").read_bytes()
    assert len(data) < 4 * (4 * 8 + 8 + 8 * 2 + 2)  # smaller than the float32 weights
    assert cli.main(["replay", str(run / "elite.genome"), "--episodes", "3"]) == 0
    out = capsys.readouterr().out
    assert "mean return" in out and "over 3 episodes" in out
    # a truncated genome file: one-line error naming the problem, exit 2
    bad = tmp_path / "bad.genome"
    bad.write_bytes(data[:-3])
    assert cli.main(["replay", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "bad.genome" in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_genome_of_an_obs_norm_run_replays_with_the_saved_statistics(tmp_path, capsys):
    run = tmp_path / "ga_normed"
    code = cli.main([
        "train", "--strategy", "deep_ga", "--obs-norm", "--generations", "2", "--pop-size", "8",
        "--truncation", "2", "--validation-episodes", "1", "--hidden", "4",
        "--eval-episodes", "0", "--final-episodes", "3", "--run-dir", str(run), "--no-progress",
    ])
    assert code == 0
    capsys.readouterr()
    # the genome plays exactly like the run folder (params + obs_stats.msgpack)
    assert cli.main(["replay", str(run / "elite.genome"), "--episodes", "3"]) == 0
    from_genome = capsys.readouterr().out.strip().splitlines()[-1]
    assert cli.main(["replay", str(run), "--episodes", "3"]) == 0
    from_folder = capsys.readouterr().out.strip().splitlines()[-1]
    assert from_genome == from_folder and "over 3 episodes" in from_genome
    # without the statistics beside it, the genome is refused with a one-line error
    (run / "obs_stats.msgpack").unlink()
    assert cli.main(["replay", str(run / "elite.genome")]) == 2
    err = capsys.readouterr().err.strip()
    assert "obs_stats.msgpack not found" in err and len(err.splitlines()) == 1, err


def test_bench_times_a_compiled_run_without_recompiling(capsys):
    """bench: one compile, --reps timed calls of the same program; the step count is the
    Hard Maze's fixed 400 steps x P members x G generations (no solution scoring)."""
    import jax

    code = cli.main(["bench", "--task", "hard_maze", "--pop-size", "4", "--hidden", "4",
                     "--generations", "2", "--reps", "2", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["env_steps_per_call"] == 2 * 4 * 400
    assert report["retraces"] == 0  # the timed calls reuse the compiled run
    assert report["devices"] == jax.device_count() and report["generations"] == 2
    assert report["seconds_per_generation"] > 0 and report["compile_s"] >= 0
    assert report["env_steps_per_s"] == pytest.approx(
        report["env_steps_per_call"] / (2 * report["seconds_per_generation"]))
    assert cli.main(["bench", "--task", "no_such_task"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown task 'no_such_task'" in err and len(err.splitlines()) == 1


def test_option_of_another_strategy_is_refused(tmp_path, capsys):
    code = cli.main(["train", "--truncation", "3", "--run-dir", str(tmp_path / "x")])
    assert code == 2
    assert "--truncation does not apply to openai_es" in capsys.readouterr().err


@pytest.mark.parametrize("strategy", ["nsr_es", "ga_ns"])
def test_novelty_strategies_train_on_the_hard_maze(strategy, tmp_path, capsys):
    path = tmp_path / strategy
    code = cli.main([
        "train", "--task", "hard_maze", "--strategy", strategy, "--generations", "2",
        "--pop-size", "8", "--hidden", "4", "--eval-episodes", "1", "--final-episodes", "1",
        "--log-every", "2", "--run-dir", str(path), "--no-progress",
        *(["--agents", "2", "--k", "3", "--record", "behavior"] if strategy == "nsr_es" else
          ["--truncation", "2", "--archive-probability", "0.5"]),
    ])
    assert code == 0
    if strategy == "nsr_es":  # every member's final position, and its picture on the maze
        behavior = np.load(path / "population_behavior.npy", allow_pickle=False)
        assert behavior.shape == (2, 8, 2) and np.isfinite(behavior).all()
        assert (path / "maze.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    assert rows[-1]["archive_size"] >= 1 and rows[-1]["mean_novelty"] >= 0
    summary = json.loads((path / "summary.json").read_text())
    # minus the final distance to the goal, of the parameters the run saved
    assert summary["final_mean_return"] == pytest.approx(_rescore(path), rel=1e-5)
    assert summary["final_mean_return"] < 0
    if strategy == "ga_ns":
        assert (path / "elite.genome").is_file()
        assert "elite genome" in capsys.readouterr().out


def test_novelty_option_does_not_apply_to_es():
    with pytest.raises(cli.CLIError, match="--agents does not apply to openai_es"):
        cli._common._settings(cli.build_parser().parse_args(["train", "--agents", "3"]))


def test_random_search_trains_and_writes_a_one_seed_genome(tmp_path, capsys):
    path = tmp_path / "rs"
    code = cli.main([
        "train", "--task", "CartPole-v1", "--strategy", "random_search", "--generations", "2",
        "--pop-size", "8", "--hidden", "4", "--validation-episodes", "1",
        "--eval-episodes", "1", "--final-episodes", "1", "--log-every", "2",
        "--run-dir", str(path), "--no-progress",
    ])
    assert code == 0
    assert "elite genome" in capsys.readouterr().out
    assert cli.main(["replay", str(path / "elite.genome"), "--episodes", "1"]) == 0


# ------------------------------------------------------------ checkpoints, resume, plot, help
def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_run_folder_has_csv_and_a_checkpoint(run_dir):
    from evojax_lab import storage

    with open(run_dir / "metrics.csv") as f:
        rows = list(__import__("csv").DictReader(f))
    jsonl = _rows(run_dir / "metrics.jsonl")
    assert [int(r["generation"]) for r in rows] == [1, 2, 3, 4]
    assert [float(r["best_fitness"]) for r in rows] == [r["best_fitness"] for r in jsonl]
    record = storage.manifest(run_dir)
    assert record["generation"] == 4 and record["metadata"]["task"] == "CartPole-v1"


def test_resume_equals_the_straight_run(run_dir, tmp_path, capsys):
    """2 generations, then --resume to 4 == the fixture's straight 4-generation run."""
    path = tmp_path / "resumed"
    code = cli.main([
        "train", "--task", "CartPole-v1", "--generations", "2", "--pop-size", "16",
        "--hidden", "8", "--eval-episodes", "2", "--final-episodes", "10", "--log-every", "2",
        "--checkpoint-every", "2", "--run-dir", str(path), "--no-progress",
    ])
    assert code == 0
    assert len(_rows(path / "metrics.jsonl")) == 2
    code = cli.main(["train", "--resume", str(path), "--generations", "4", "--log-every", "2",
                     "--no-progress", "--final-episodes", "10"])
    assert code == 0
    assert "(resumed)" in capsys.readouterr().out
    assert _rows(path / "metrics.jsonl") == _rows(run_dir / "metrics.jsonl")
    assert (path / "metrics.csv").read_text() == (run_dir / "metrics.csv").read_text()
    assert (path / "params.msgpack").read_bytes() == (run_dir / "params.msgpack").read_bytes()
    assert json.loads((path / "config.json").read_text())["generations"] == 4
    summary = json.loads((path / "summary.json").read_text())
    straight = json.loads((run_dir / "summary.json").read_text())
    assert summary["final_mean_return"] == straight["final_mean_return"]
    assert summary["env_steps"] == straight["env_steps"]


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--sigma", "0.1"], "--sigma cannot be given with --resume"),
        (["--seed", "3", "--task", "Pendulum-v1"], "--seed, --task cannot be given"),
    ],
)
def test_resume_refuses_run_defining_options(run_dir, extra, expected, capsys):
    assert cli.main(["train", "--resume", str(run_dir), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1, err


def test_resume_from_a_damaged_checkpoint_is_a_one_line_error(run_dir, tmp_path, capsys):
    import shutil

    from evojax_lab import storage

    copy = tmp_path / "damaged"
    shutil.copytree(run_dir, copy)
    manifest = storage.step_dir(copy, 4) / "manifest.json"
    data = manifest.read_bytes()
    manifest.write_bytes(data[: len(data) // 2])

    def files():
        return {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()}

    before = files()
    assert cli.main(["train", "--resume", str(copy), "--generations", "6",
                     "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "truncated" in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert files() == before  # config.json (asked for 6 generations) and metrics untouched
    shutil.rmtree(storage.root(copy))
    assert cli.main(["train", "--resume", str(copy), "--no-progress"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_plot_command_draws_the_learning_curve(run_dir, tmp_path, capsys):
    assert cli.main(["plot", str(run_dir), "--out", str(tmp_path / "fig.svg")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "fig.svg")
    assert (tmp_path / "fig.svg").read_text().lstrip().startswith("<?xml")


def test_tensorboard_without_tensorboardx_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_tensorboardx(name, *args, **kw):
        if name.startswith("tensorboardX"):
            raise ImportError("No module named 'tensorboardX'")
        return real_import(name, *args, **kw)

    monkeypatch.delitem(sys.modules, "tensorboardX", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_tensorboardx)
    code = cli.main(["train", "--tensorboard", "--run-dir", str(tmp_path / "x")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "pip install 'evojax_lab[tensorboard]'" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("command", [None, "train", "replay", "plot", "bench", "info"])
def test_every_subcommand_help_describes_every_option(command, capsys):
    parser = cli.build_parser()
    sub = parser if command is None else \
        parser._subparsers._group_actions[0].choices[command]
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"] if command is None else [command, "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # unwrapped
    for action in sub._actions:
        for option in action.option_strings:
            assert option in text, option
        assert action.help, f"{command}: {action.option_strings or action.dest} has no help"
        if not action.option_strings and action.dest != "command":  # positionals
            assert action.dest in text
    if command is None:
        for name in ("train", "replay", "plot", "bench", "info"):
            assert name in text


# ------------------------------------------------- observation normalization and action noise
def test_obs_norm_run_saves_its_stats_and_replays_with_them(tmp_path, monkeypatch, capsys):
    """train --obs-norm --action-noise: config.json keeps both, obs_stats.msgpack holds the final
    statistics (those of the TrainResult), the final score and replay use them."""
    import jax

    import evojax_lab as el
    from evojax_lab import storage

    results = []
    real_run = storage.run_with_checkpoints

    def keep_result(*args, **kw):
        results.append(real_run(*args, **kw))
        return results[-1]

    monkeypatch.setattr(storage, "run_with_checkpoints", keep_result)
    path = tmp_path / "normed"
    # Pendulum: action noise needs a continuous action space (CartPole's is discrete)
    code = cli.main([
        "train", "--task", "Pendulum-v1", "--obs-norm", "--action-noise", "0.01",
        "--generations", "2", "--pop-size", "8", "--hidden", "8", "--episodes", "1",
        "--eval-episodes", "1", "--final-episodes", "2", "--no-progress",
        "--run-dir", str(path),
    ])
    assert code == 0
    capsys.readouterr()
    config = json.loads((path / "config.json").read_text())
    assert config["obs_norm"] is True and config["action_noise"] == 0.01
    data = (path / "obs_stats.msgpack").read_bytes()
    stats = serialization.msgpack_restore(data)  # plain msgpack, no pickle
    assert set(stats) == {"count", "mean", "m2"}
    rows = _rows(path / "metrics.jsonl")
    assert len(rows) == 2
    assert float(stats["count"]) == rows[-1]["obs_count"] > 0
    # obs_mean / obs_std are [obs] arrays, not logged to metrics.jsonl: compare with the result
    assert "obs_mean" not in rows[-1]
    (result,) = results
    np.testing.assert_array_equal(stats["mean"], np.asarray(result.obs_stats.mean))
    np.testing.assert_array_equal(stats["m2"], np.asarray(result.obs_stats.m2))
    np.testing.assert_array_equal(stats["mean"], np.asarray(result.metrics["obs_mean"])[-1])
    # the final score is the solution's with the saved statistics
    task = el.tasks.make("Pendulum-v1")
    policy = el.policies.for_task(task, hidden=(8,))
    params = serialization.from_bytes(
        policy.init(jax.random.PRNGKey(0), jax.numpy.zeros(task.observation_shape)),
        (path / "params.msgpack").read_bytes())
    normed = el.policies.normalization.ObsStats(stats["count"], stats["mean"], stats["m2"])
    keys = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(0), 10_000_019), 2)
    returns = jax.jit(jax.vmap(lambda k: el.rollout(k, task, policy, params,
                                                    obs_norm=normed)[0]))(keys)
    summary = json.loads((path / "summary.json").read_text())
    assert summary["final_mean_return"] == pytest.approx(float(returns.mean()), rel=1e-5)

    assert cli.main(["replay", str(path), "--episodes", "2"]) == 0
    out = capsys.readouterr().out
    assert "mean return" in out and "over 2 episodes" in out
    # a damaged or missing statistics file: a one-line error naming it
    (path / "obs_stats.msgpack").write_bytes(data[:-3])
    assert cli.main(["replay", str(path), "--episodes", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "obs_stats.msgpack" in err and len(err.splitlines()) == 1 and "Traceback" not in err
    (path / "obs_stats.msgpack").unlink()
    assert cli.main(["replay", str(path), "--episodes", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "obs_stats.msgpack not found" in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--obs-norm"], "--obs-norm cannot be given with --resume"),
        (["--action-noise", "0.01"], "--action-noise cannot be given with --resume"),
    ],
)
def test_resume_refuses_obs_norm_and_action_noise(tmp_path, extra, expected, capsys):
    assert cli.main(["train", "--resume", str(tmp_path), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("saved", [{}, {"obs_norm": True, "action_noise": 0.01}])
def test_resume_reads_obs_norm_and_action_noise_from_config(tmp_path, saved):
    """They come back from config.json; an older config.json without them means off."""
    config = {"task": "CartPole-v1", "strategy": "openai_es", "seed": 0, "eval_episodes": 1,
              "chunk_size": None, "record": [], "pop_size": 8, "sigma": 0.05,
              "learning_rate": 0.03, "generations": 2, "episodes": 1, "hidden": [8], **saved}
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "checkpoints" / "00000002").mkdir(parents=True)  # a step (only its name read)
    (tmp_path / "checkpoints" / "00000002" / "manifest.json").write_text("{}")
    args = cli.build_parser().parse_args(["train", "--resume", str(tmp_path)])
    cli.train._resume(args)
    assert args.obs_norm is saved.get("obs_norm", False)
    assert args.action_noise == saved.get("action_noise", 0.0)
