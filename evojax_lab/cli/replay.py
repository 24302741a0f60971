"""``evojax-lab replay``: play a run's solution or a genome."""

from __future__ import annotations

import json
from pathlib import Path

from evojax_lab import runs
from evojax_lab.cli._common import (
    OBS_STATS_NAME,
    CLIError,
    _device_options,
    _hidden,
    _positive_int,
    _seed,
)


def add_parser(sub) -> None:
    r = sub.add_parser(
        "replay",
        help="play a trained solution from a run folder",
        description="Rebuild the policy from a run folder (config.json + params.msgpack, and "
        "obs_stats.msgpack for a run trained with --obs-norm) and play it, printing the mean "
        "return.",
    )
    r.add_argument("run", help="run folder written by `evojax-lab train`, or a .genome file "
                   "(Deep GA / random search elite; the genome of an --obs-norm run is "
                   "played with the obs_stats.msgpack beside it)")
    r.add_argument("--hidden", type=_hidden,
                   help="hidden widths of the policy (default: from the run or genome)")
    r.add_argument("--task", help="task to play on (default: the run's task)")
    r.add_argument("--episodes", type=_positive_int, default=10,
                   help="episodes to play (default: 10)")
    r.add_argument("--seed", type=_seed, default=1, help="random seed (default: 1)")
    _device_options(r, multihost=False)


def cmd_replay(args) -> int:
    import jax
    from flax import serialization

    import evojax_lab as el

    run = Path(args.run)
    obs_stats = None  # observation statistics of a run trained with --obs-norm
    if run.is_file():  # a genome file
        data = run.read_bytes()
        try:
            meta = _genome_metadata(el.genome.info(data)["metadata"])
        except ValueError as err:
            raise CLIError(f"{run}: {err}") from None
        task_name = args.task or meta.get("task")
        if not task_name:
            raise CLIError(f"{run} does not name its task: pass --task")
        hidden = args.hidden if args.hidden is not None else meta.get("hidden", (32, 32))
        task, policy, template = _replay_policy(el, task_name, hidden)
        try:
            params = el.genome.decode(data, template)
        except ValueError as err:
            raise CLIError(f"{run}: {err}") from None
        if meta.get("obs_norm"):  # the statistics were saved beside the genome
            obs_stats = _load_obs_stats(el, run.parent / OBS_STATS_NAME, task)
        print(f"{run}: {el.genome.info(data)['num_mutations']} mutations, {len(data)} bytes")
    else:
        config_path, params_path = run / "config.json", run / "params.msgpack"
        for p in (config_path, params_path):
            if not p.is_file():
                raise CLIError(f"{p} not found: give a run folder written by `evojax-lab "
                               "train` or a .genome file")
        try:
            config = json.loads(config_path.read_text())
        except json.JSONDecodeError as err:
            raise CLIError(f"{config_path} is not valid JSON: {err}") from None
        task_name = args.task or config.get("task")
        hidden = args.hidden if args.hidden is not None else tuple(config.get("hidden", (32, 32)))
        task, policy, template = _replay_policy(el, task_name, hidden)
        try:
            params = serialization.from_bytes(template, params_path.read_bytes())
            _check_fits(params, template)
        except Exception as err:  # msgpack / structure / shape mismatch: name the file
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise CLIError(f"{params_path} does not fit the policy of "
                           f"{_describe(task_name, hidden)} "
                           f"(the run's: {_describe(config.get('task'), config.get('hidden'))}): "
                           f"{first}") from None
        if config.get("obs_norm"):
            obs_stats = _load_obs_stats(el, run / OBS_STATS_NAME, task)
    keys = jax.random.split(jax.random.PRNGKey(args.seed), args.episodes)
    returns = jax.jit(jax.vmap(
        lambda k: el.rollout(k, task, policy, params, obs_norm=obs_stats)[0]
    ))(keys)
    print(f"{task_name}: mean return {float(returns.mean()):.1f} ± {float(returns.std()):.1f} "
          f"over {args.episodes} episodes")
    return 0


def _genome_metadata(meta) -> dict:
    """A genome's metadata, checked: the CRC guards the bytes, not what a writer put in them."""
    meta = {} if meta is None else meta
    if not isinstance(meta, dict):
        raise ValueError(f"metadata must be a JSON object, got {type(meta).__name__}")
    if "task" in meta and not isinstance(meta["task"], str):
        raise ValueError(f"metadata 'task' must be a task name, got {meta['task']!r}")
    hidden = meta.get("hidden", (32, 32))
    if not (isinstance(hidden, (list, tuple))
            and all(type(w) is int and w >= 1 for w in hidden)):
        raise ValueError(f"metadata 'hidden' must be a list of widths >= 1, got {hidden!r}")
    if not isinstance(meta.get("obs_norm", False), bool):
        raise ValueError(f"metadata 'obs_norm' must be true or false, got {meta['obs_norm']!r}")
    return {**meta, "hidden": tuple(hidden)}


def _check_fits(params, template) -> None:
    """Raise naming the first parameter whose shape differs from the policy's."""
    import jax

    for (path, got), want in zip(jax.tree_util.tree_flatten_with_path(params)[0],
                                 jax.tree.leaves(template), strict=True):
        if got.shape != want.shape:
            raise ValueError(f"{jax.tree_util.keystr(path)} has shape {got.shape}, the policy "
                             f"needs {want.shape}")


def _describe(task_name, hidden) -> str:
    widths = ",".join(map(str, hidden)) if hidden else "none"
    return f"--task {task_name} --hidden {widths}"


def _load_obs_stats(el, path: Path, task):
    """The final observation statistics of a ``--obs-norm`` run (``obs_stats.msgpack``)."""
    try:
        return runs.load_obs_stats(path, task)
    except ValueError as err:
        raise CLIError(str(err)) from None


def _replay_policy(el, task_name, hidden):
    import jax

    try:
        task = el.tasks.make(task_name)
    except ValueError as err:
        raise CLIError(str(err)) from None
    policy = el.policies.for_task(task, hidden=tuple(hidden))
    template = policy.init(jax.random.PRNGKey(0), jax.numpy.zeros(task.observation_shape))
    return task, policy, template
