"""benchmarks/RESULTS.md's summary table: regenerated from the claim records, and the README's
benchmark numbers come from it.

The table between the summary markers is written by ``benchmarks/summarize.py`` from the
``<!-- claim: {...} -->`` records at the end of the sections (the newest record of each id);
``--check`` must pass on the committed file and must fail on a malformed record or a stale
table (checked on temporary copies).

The README check: README_CLAIMS lists every statement of the README's "Benchmarks" section that
quotes a number, each with the claim ids it quotes. The test fails when a listed statement is no
longer in the README (edit the list with the README), when a statement holds a number that is
not in its claims' rows of the table (what, figure, seeds or verdict; numbers are compared as
values, so 16.8 matches 16.80 but 8.5 does not match 8.55), when a statement that says
"held-out" cites a claim whose seeds are not held out, or when the section holds a number
outside the listed statements (a new benchmark sentence must be listed, and so checked).
"""

import importlib.util
import re
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "summarize.py"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
README = ROOT / "README.md"

README_CLAIMS = [
    ("OpenAI-ES at N = 1M, P = 1,024 with default arguments on 1 device: 33.20× faster per "
     "generation than evosax's `Open_ES`, peak memory 0.92 GB vs 16.84 GB",
     ["es_quadratic_speed", "es_quadratic_memory"]),
    ("CartPole ES at P = 2,048 with 500-step episodes: 3.03× evosax's env-steps/s with 2 host "
     "devices (1.66× on 1 device)", ["cartpole_env_steps"]),
    ("2 host devices 1.98× the evaluation throughput of 1", ["scaling_host_devices"]),
    ("N = 4M, P = 4,096 ES generations in 4.80 GB", ["memory_4m"]),
    ("the targets not met (compile time, Breakout-MinAtar on 2 devices, memory bandwidth)",
     ["compile_time", "rollout_host_devices", "es_quadratic_bandwidth"]),
    ("MinAtar at an equal budget of 200k frames (P = 64, 3 seeds): on Breakout the Deep GA "
     "scores 5.83 ± 0.76 against random search's 3.00 and OpenAI-ES's 2.50; on SpaceInvaders "
     "15.00 vs 11.33 vs 7.00", ["minatar_deep_ga"]),
    ("with settings frozen before the run, on held-out seeds 100–104, Breakout: the Deep GA "
     "5.40 ± 0.22, random search 3.20 ± 0.27, OpenAI-ES 1.30 ± 1.30 (Deep GA minus random "
     "search: 95% bootstrap interval [1.90, 2.50]", ["minatar_breakout_held_out"]),
    ("Hard Maze at 100k episodes per run over 5 seeds: OpenAI-ES and the Deep GA are trapped "
     "in 5/5 and GA-NS reaches the goal in 4/5", ["hard_maze_fitness_trapped", "hard_maze_ga_ns"]),
    ("with settings frozen before the run, on held-out seeds 100–109, GA-NS reaches the goal "
     "in 10/10 and the Deep GA in 0/10 (one-sided Fisher exact p = 5.4e-06",
     ["hard_maze_ga_ns_held_out"]),
    ("NS-ES's best setting (300k episodes per run), picked among about 30 on seeds 0–4 where it "
     "reached 3/5, reaches it on 0/5 held-out seeds (5–9)", ["hard_maze_ns_es"]),
    ("and NSR-ES on 0/5 in every setting tried", ["hard_maze_nsr_es"]),
    ("brax ant in the U-trap at 12,800 episodes per seed (3 seeds): the deployed OpenAI-ES "
     "solution ends inside the U in 3/3, the deployed NSR-ES solution past the wall in 1/3 "
     "(some ant it evaluated got around in 3/3)", ["ant_trap_es", "ant_trap_nsr_es"]),
    ("with settings frozen before the run, on held-out seeds 100–102, judged by the deployed "
     "solution's mean final x over 10 episodes: OpenAI-ES 0/3 and NSR-ES 0/3 past the wall, "
     "although NSR-ES's population got around in 3/3 (`benchmarks/ant_trap_held_out.png`)",
     ["ant_trap_held_out_es", "ant_trap_held_out_nsr_es"]),
    ("and NSRA-ES 1/3 (one-sided Fisher exact p = 0.5 against OpenAI-ES: not established; "
     "`benchmarks/ant_trap_held_out_nsra.png`)", ["ant_trap_held_out_nsra_es"]),
    ("on held-out seeds: plain mutation and SM-G-SUM solve 0/10 each with 32 hidden layers at "
     "10,000 evaluations, and 0/5 each with 100 hidden layers (the seed paper's headline) at "
     "20,000 evaluations (`benchmarks/safe_mutations_100_layers.png`)",
     ["safe_mutations_32_layers_frozen", "safe_mutations_100_layers"]),
    ("at 100,000 evaluations (32 layers, seeds 0–2) plain mutation solves 2/3 and SM-G-SUM 3/3",
     ["safe_mutations_32_layers_100k"]),
]
NUMBER = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?")


def load_summarize():
    spec = importlib.util.spec_from_file_location("summarize", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


summarize = load_summarize()


def run_check(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--check", "--results", str(path)],
                          capture_output=True, text=True, timeout=60)


def numbers(text: str) -> set[Decimal]:
    return {Decimal(match.replace(",", "")) for match in NUMBER.findall(text)}


def flat(text: str) -> str:
    return " ".join(text.split())


def table_rows(text: str) -> dict[str, list[str]]:
    """The summary table's rows by claim id (cells of each row)."""
    lines = text.split("\n")
    start, end = lines.index(summarize.START), lines.index(summarize.END)
    rows = {}
    for line in lines[start:end]:
        if line.startswith("| `"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            rows[cells[0].strip("`")] = cells
    return rows


def benchmarks_section(text: str) -> str:
    match = re.search(r"\n## Benchmarks\n(.*?)\n## ", text, re.S)
    assert match, "README has no Benchmarks section"
    return flat(match.group(1))


def copy(tmp_path: Path) -> Path:
    target = tmp_path / "RESULTS.md"
    shutil.copy(RESULTS, target)
    return target


def replace_record(path: Path, claim_id: str, old: str, new: str) -> None:
    """Replace text in the last record of claim_id (the newest in file order)."""
    lines = path.read_text(encoding="utf-8").split("\n")
    index = max(i for i, line in enumerate(lines)
                if line.startswith(f'<!-- claim: {{"id": "{claim_id}"'))
    assert old in lines[index]
    lines[index] = lines[index].replace(old, new, 1)
    path.write_text("\n".join(lines), encoding="utf-8")


def test_check_passes_on_the_committed_file():
    result = run_check(RESULTS)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("old, new, message", [
    ('"verdict": ', '"verdikt": ', "missing field 'verdict'"),
    ('"held_out": "n/a"', '"held_out": "maybe"', "held_out must be"),
    ('"date": "20', '"date": "28 Nov 20', "is not YYYY-MM-DD"),
    ('", "figure"', '" "figure"', "not valid JSON"),
    ('"held_out": "n/a"', '"held_out": false', "cannot start with 'met'"),
])
def test_a_malformed_record_fails_the_check(tmp_path, old, new, message):
    path = copy(tmp_path)
    replace_record(path, "es_quadratic_speed", old, new)
    result = run_check(path)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr and "line " in result.stderr


def test_a_stale_table_fails_the_check_until_regenerated(tmp_path):
    path = copy(tmp_path)
    replace_record(path, "es_quadratic_speed", '"figure": "', '"figure": "99.99x, ')
    result = run_check(path)
    assert result.returncode == 1
    assert "stale" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    before = path.read_text(encoding="utf-8")
    subprocess.run([sys.executable, str(SCRIPT), "--results", str(path)], check=True,
                   timeout=60)
    assert run_check(path).returncode == 0
    after = path.read_text(encoding="utf-8")
    assert "99.99x" in table_rows(after)["es_quadratic_speed"][2]
    assert after.split(summarize.END)[1] == before.split(summarize.END)[1]  # logs untouched


def test_the_newest_record_of_an_id_is_current():
    base = {"what": "w", "figure": "f", "seeds": "n/a", "held_out": "n/a", "verdict": "v",
            "commit": "c", "command": "x"}
    records = [{**base, "id": "a", "date": "2026-01-02", "line": 1, "figure": "new by date"},
               {**base, "id": "a", "date": "2026-01-01", "line": 2, "figure": "old"},
               {**base, "id": "b", "date": "2026-01-01", "line": 3, "figure": "first"},
               {**base, "id": "b", "date": "2026-01-01", "line": 4, "figure": "later line"}]
    current = {c["id"]: c["figure"] for c in summarize.current_claims(records)}
    assert current == {"a": "new by date", "b": "later line"}


def test_every_readme_benchmark_number_is_in_the_table():
    rows = table_rows(RESULTS.read_text(encoding="utf-8"))
    section = benchmarks_section(README.read_text(encoding="utf-8"))
    for snippet, ids in README_CLAIMS:
        assert flat(snippet) in section, f"README no longer says: {snippet!r}"
        assert all(claim in rows for claim in ids), ids
        cited = numbers(" ".join(" ".join(rows[claim][1:6]) for claim in ids))
        missing = numbers(snippet) - cited
        assert not missing, f"{sorted(missing)} of {snippet!r} are not in rows {ids}"
        if "held-out" in snippet:
            assert all(rows[claim][4] == "yes" for claim in ids), ids
    rest = section
    for snippet, _ in README_CLAIMS:
        rest = rest.replace(flat(snippet), " ")
    assert not NUMBER.search(rest), f"a README benchmark number is not checked: {rest!r}"
