"""``evojax-lab info``: a run folder's config, progress and checkpoint state."""

from __future__ import annotations

import json
from pathlib import Path

from evojax_lab import runs
from evojax_lab.cli._common import (
    CLIError,
)


def add_parser(sub) -> None:
    i = sub.add_parser(
        "info",
        help="print a run folder's config, progress and checkpoint state",
        description="Print what a run folder holds: its config (the settings that shape the "
        "run), how far it got (the checkpoint's generation and the last metrics row) and its "
        "checkpoint (format version, size, whether it can be resumed). Reads files only: needs "
        "no JAX device, changes nothing.",
    )
    i.add_argument("run", help="run folder (written by `evojax-lab train`)")
    i.add_argument("--json", action="store_true", help="print one JSON object instead")


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _checkpoint_info(run: Path) -> dict | None:
    """The newest checkpoint of a run folder (its manifest; no array is read), the steps kept,
    or ``None`` without one."""
    from evojax_lab import checkpoint, storage

    done = storage.steps(run)
    if not done:
        legacy = run / storage.LEGACY_NAME
        if not legacy.is_file():
            return None
        try:
            meta = checkpoint.info(legacy).get("metadata", {})
        except (checkpoint.CheckpointError, OSError) as err:
            return {"file": str(legacy), "readable": False, "problem": str(err)}
        return {"file": str(legacy), "readable": True, "format": "evojax_lab 0.1 file",
                "bytes": legacy.stat().st_size, "generation": meta.get("generation"),
                "generations": meta.get("generations"), "kept": []}
    step = storage.step_dir(run, done[-1])
    try:
        record = storage.manifest(run, done[-1])
    except (checkpoint.CheckpointError, OSError) as err:
        return {"file": str(step), "readable": False, "problem": str(err)}
    return {"file": str(step), "readable": True,
            "format": f"orbax steps, manifest {record['version']}", "bytes": _size(step),
            "generation": record["generation"], "generations": record["generations"],
            "kept": [storage.step_dir(run, g).name for g in done[:-1]]}


def _run_info(run: Path) -> dict:
    """What ``info`` reports about a run folder (files only)."""
    try:
        config = runs.read_config(run)
    except ValueError as err:
        raise CLIError(str(err)) from None
    out = {"run": str(run), "config": config}
    out["checkpoint"] = _checkpoint_info(run)
    metrics = run / "metrics.jsonl"
    if metrics.is_file():
        lines = [line for line in metrics.read_text().splitlines() if line.strip()]
        try:
            out["last_metrics"] = json.loads(lines[-1]) if lines else None
        except json.JSONDecodeError as err:
            out["last_metrics"] = {"problem": f"{metrics} last line is not JSON: {err}"}
    summary = run / "summary.json"
    if summary.is_file():
        try:
            out["summary"] = json.loads(summary.read_text())
        except json.JSONDecodeError as err:
            out["summary"] = {"problem": f"{summary} is not valid JSON: {err}"}
    return out


def cmd_info(args) -> int:
    info = _run_info(Path(args.run))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    config, ckpt = info["config"], info["checkpoint"]
    print(f"run folder   {info['run']}")
    print(f"task         {config['task']} | strategy {config['strategy']} | seed "
          f"{config['seed']}")
    skip = {"task", "strategy", "seed", "devices", "processes"}
    print("settings     " + ", ".join(f"{k}={v}" for k, v in config.items() if k not in skip))
    if ckpt is None:
        print("checkpoint   none (trained with --checkpoint-every 0, or not started)")
    elif not ckpt["readable"]:
        print(f"checkpoint   UNREADABLE: {ckpt['problem']}")
    else:
        done = ckpt["generation"] == ckpt["generations"]
        state = "finished" if done else "resumable with `evojax-lab train --resume`"
        print(f"checkpoint   generation {ckpt['generation']} of {ckpt['generations']} "
              f"({state}); {ckpt['format']}, {ckpt['bytes']:,} bytes")
        if ckpt["kept"]:
            print(f"kept         {', '.join(ckpt['kept'])}")
    row = info.get("last_metrics")
    if row:
        fields = ("generation", "best_fitness", "mean_fitness", "solution_fitness", "steps")
        print("last metrics " + ", ".join(f"{k}={row[k]}" for k in fields if k in row))
    summary = info.get("summary")
    if summary and "final_mean_return" in summary:
        print(f"final score  {summary['final_mean_return']:.4g} ± "
              f"{summary['final_std_return']:.3g} over {summary['final_episodes']} episodes")
    return 0
