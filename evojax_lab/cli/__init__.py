"""The ``evojax-lab`` command line: ``train`` (with checkpoints, ``--resume`` and ``--config``),
``replay``, ``plot``, ``bench`` and ``info``, one module each; what they share is in
``_common``. A thin shell over functions a notebook can call (``el.runs``, ``el.checkpoint``,
``el.plots``)."""

from __future__ import annotations

import argparse
import os
import sys

from evojax_lab.cli import _common, bench, info, plot, replay, train
from evojax_lab.cli._common import CLIError, _explicit_options, _Parser, _setup_devices
from evojax_lab.core.extras import MissingExtra

COMMANDS = {"train": train, "replay": replay, "bench": bench, "plot": plot, "info": info}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="evojax-lab",
        description="JAX-accelerated neuroevolution: train (checkpointed, resumable), replay "
        "a solution, plot a run folder, bench a strategy on this machine. "
        "`evojax-lab COMMAND --help` describes each command.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser,
                                help="what to do; `evojax-lab COMMAND --help` lists its options")
    sub.required = True
    for name, module in COMMANDS.items():
        module.add_parser(sub)
        sub.choices[name].add_argument(
            "--debug", action="store_true",
            help="on an unexpected error, show its Python traceback (default: one line)")
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.explicit = _explicit_options(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        _setup_devices(args)
        command = COMMANDS[args.command]
        return getattr(command, f"cmd_{args.command}")(args)
    except (CLIError, MissingExtra) as err:  # the user's input, or an extra to install
        message = " ".join(str(err).split())  # one line, whatever the message held
        print(f"evojax-lab {args.command}: error: {message}", file=sys.stderr)
        return 2
    except OSError as err:  # a file that cannot be read or written: one line naming it
        if args.debug:
            raise
        where = f"{err.filename}: " if getattr(err, "filename", None) else ""
        print(f"evojax-lab {args.command}: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        folder = getattr(args, "checkpoint_dir", None)
        hint = ""
        from evojax_lab import storage

        if folder is not None and storage.has_checkpoint(folder):
            hint = f"; continue with: evojax-lab train --resume {folder}"
        print(f"interrupted{hint}", file=sys.stderr)
        return 130
    except Exception as err:  # a runtime fault (not the user's input): one line, exit 1
        if args.debug:
            raise
        print(f"evojax-lab {args.command}: error: {_first_line(err)} (--debug shows the "
              "traceback)", file=sys.stderr)
        return 1


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__


__all__ = ["CLIError", "_common", "build_parser", "main"]
