"""Regenerate the summary table at the top of benchmarks/RESULTS.md from its claim records.

RESULTS.md is a log: the benchmark scripts append a dated section per run. A *claim record* is
one line, an HTML comment holding one JSON object, placed at the end of the section (or verdict)
it summarizes::

    <!-- claim: {"id": "...", "what": "...", "figure": "...", "seeds": "...",
                 "held_out": true, "verdict": "...", "commit": "...",
                 "date": "YYYY-MM-DD", "command": "..."} -->

(on one line in the file). Every field is required and no other field is allowed:

- ``id``: the claim's name (lowercase letters, digits, ``_``); several records may share it;
- ``what``: the claim and the settings it was measured at;
- ``figure``: the measured number(s);
- ``seeds``: how many seeds and which (``"n/a"`` for speed and memory benchmarks);
- ``held_out``: ``true`` when the seeds were not used to choose a setting in favour of the claim
  (settings fixed beforehand, or changed on these seeds only against the claimed effect),
  ``false`` when some setting was chosen on these seeds, ``"n/a"`` when there are no seeds;
- ``verdict``: the current reading of the figure; a record with ``held_out`` false may not have
  a verdict starting with "met" (no verdict rests on tuning seeds);
- ``commit``: the evojax_lab revision the section records ("evojax_lab at ..."; for a verdict or
  sweep that records none, the commit that added it to RESULTS.md);
- ``date``: the day of the measurement, ``YYYY-MM-DD``;
- ``command``: the command that reproduces it, run from the repository root.

The current record of an id is the newest: the latest ``date``, then the latest position in the
file. The table (one row per current claim: claims with seeds first, then the speed and memory
benchmarks, each sorted by id) is written between the two marker lines ``START`` and ``END``
right after the title; nothing else in the file changes.

Usage: ``python benchmarks/summarize.py`` rewrites the table; ``--check`` only compares it and
exits 1 with a one-line message if the table is stale or a record is malformed;
``--results PATH`` works on another file.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
START = "<!-- summary:start -->"
END = "<!-- summary:end -->"
FIELDS = ("id", "what", "figure", "seeds", "held_out", "verdict", "commit", "date", "command")
HELD_OUT = {True: "yes", False: "no", "n/a": "n/a"}
COLUMNS = ("claim", "what", "figure", "seeds", "held out", "verdict", "commit", "date",
           "command")
RECORD_PREFIX = "<!-- claim:"
RECORD = re.compile(r"<!-- claim: (\{.*\}) -->")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
ID = re.compile(r"[a-z0-9_]+")


class RecordError(ValueError):
    """A malformed claim record; the message names the line."""


def record_lines(text: str) -> list[tuple[int, str]]:
    """(1-based line number, line) of every line that starts a claim record."""
    return [(number, line.strip()) for number, line in enumerate(text.splitlines(), 1)
            if line.strip().startswith(RECORD_PREFIX)]


def field_problem(record: dict) -> str | None:
    """What is wrong with a decoded record's fields, or None."""
    missing = [name for name in FIELDS if name not in record]
    if missing:
        return f"missing field {missing[0]!r}"
    extra = sorted(set(record) - set(FIELDS))
    if extra:
        return f"unknown field {extra[0]!r}"
    if not (record["held_out"] is True or record["held_out"] is False
            or record["held_out"] == "n/a"):
        return f"held_out must be true, false or \"n/a\", not {record['held_out']!r}"
    for name in FIELDS:
        if name != "held_out" and not (isinstance(record[name], str) and record[name].strip()):
            return f"field {name!r} must be a non-empty string"
    if "-->" in json.dumps(record, ensure_ascii=False):
        return "a field contains '-->'"
    if not ID.fullmatch(record["id"]):
        return f"id {record['id']!r} is not lowercase letters, digits and _"
    if not DATE.fullmatch(record["date"]):
        return f"date {record['date']!r} is not YYYY-MM-DD"
    if record["held_out"] is False and record["verdict"].lower().startswith("met"):
        return "a verdict measured on tuning seeds (held_out false) cannot start with 'met'"
    return None


def parse_record(number: int, line: str) -> dict:
    """The record on one line, with its line number under "line"; raises RecordError."""
    match = RECORD.fullmatch(line)
    if not match:
        raise RecordError(f"line {number}: claim record is not '<!-- claim: {{...}} -->'")
    try:
        record = json.loads(match.group(1))
    except json.JSONDecodeError as error:
        raise RecordError(f"line {number}: claim record is not valid JSON ({error.msg})") from None
    if not isinstance(record, dict):
        raise RecordError(f"line {number}: claim record is not a JSON object")
    problem = field_problem(record)
    if problem:
        raise RecordError(f"line {number}: claim record {record.get('id', '?')!r}: {problem}")
    return {**record, "line": number}


def parse_records(text: str) -> list[dict]:
    """Every claim record of the file, in file order."""
    return [parse_record(number, line) for number, line in record_lines(text)]


def current_claims(records: list[dict]) -> list[dict]:
    """The newest record of each id: the latest date, then the latest line."""
    newest: dict[str, dict] = {}
    for record in records:
        held = newest.get(record["id"])
        if held is None or (record["date"], record["line"]) > (held["date"], held["line"]):
            newest[record["id"]] = record
    return list(newest.values())


def sort_claims(claims: list[dict]) -> list[dict]:
    """Claims measured on seeds first, then speed and memory ("n/a"), each by id."""
    return sorted(claims, key=lambda claim: (claim["held_out"] == "n/a", claim["id"]))


def cell(text: str) -> str:
    """Text safe inside one Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def table_row(claim: dict) -> str:
    """One Markdown table row of a claim."""
    values = (f"`{claim['id']}`", claim["what"], claim["figure"], claim["seeds"],
              HELD_OUT[claim["held_out"]], claim["verdict"], claim["commit"], claim["date"],
              f"`{claim['command']}`")
    return "| " + " | ".join(cell(value) for value in values) + " |"


def render_block(claims: list[dict]) -> str:
    """The generated block, markers included, for the claims in table order."""
    lines = [START,
             "## Summary: the current verdict of every claim",
             "",
             "Generated by `python benchmarks/summarize.py` from the claim records in the "
             "sections below (the newest record of each claim); do not edit by hand.",
             "",
             "| " + " | ".join(COLUMNS) + " |",
             "|" + "---|" * len(COLUMNS)]
    lines += [table_row(claim) for claim in claims]
    lines.append(END)
    return "\n".join(lines)


def block_span(lines: list[str]) -> tuple[int, int] | None:
    """(start, end) line indices of the generated block, markers included, or None."""
    if START not in lines:
        return None
    start = lines.index(START)
    if END not in lines[start:]:
        return None
    return start, lines.index(END, start)


def title_index(lines: list[str]) -> int:
    """Index of the title line (the first '# ' heading); 0 if there is none."""
    return next((i for i, line in enumerate(lines) if line.startswith("# ")), 0)


def with_block(text: str, block: str) -> str:
    """The text with its generated block replaced (or inserted after the title)."""
    lines = text.split("\n")
    span = block_span(lines)
    if span:
        start, end = span
        lines[start:end + 1] = block.split("\n")
    else:
        at = title_index(lines) + 1
        lines[at:at] = ["", *block.split("\n")]
    return "\n".join(lines)


def summarize(text: str) -> str:
    """The text with the table regenerated from its records; raises RecordError."""
    return with_block(text, render_block(sort_claims(current_claims(parse_records(text)))))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the table is stale or a record is malformed; write nothing")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the results file")
    args = parser.parse_args(argv)
    text = args.results.read_text(encoding="utf-8")
    try:
        new = summarize(text)
    except RecordError as error:
        print(f"{args.results}: {error}", file=sys.stderr)
        return 1
    if args.check:
        if new != text:
            print(f"{args.results}: the summary table is stale: run python "
                  "benchmarks/summarize.py", file=sys.stderr)
            return 1
        return 0
    if new != text:
        args.results.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
