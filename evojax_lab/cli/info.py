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


def _run_info(run: Path) -> dict:
    """What ``info`` reports about a run folder (files only)."""
    from evojax_lab import checkpoint

    try:
        config = runs.read_config(run)
    except ValueError as err:
        raise CLIError(str(err)) from None
    out = {"run": str(run), "config": config}
    path = run / checkpoint.CHECKPOINT_NAME
    if path.is_file():
        try:
            header = checkpoint.info(path)
        except (checkpoint.CheckpointError, OSError) as err:
            out["checkpoint"] = {"file": str(path), "readable": False, "problem": str(err)}
        else:
            meta = header.get("metadata", {})
            out["checkpoint"] = {"file": str(path), "readable": True,
                                 "format_version": header.get("version"),
                                 "bytes": path.stat().st_size,
                                 "generation": meta.get("generation"),
                                 "generations": meta.get("generations"),
                                 "kept": [p.name for p in checkpoint.kept_checkpoints(path)]}
    else:
        out["checkpoint"] = None
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
              f"({state}); format {ckpt['format_version']}, {ckpt['bytes']:,} bytes")
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
