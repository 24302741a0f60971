"""`evojax-lab train` on every MinAtar game with the Deep GA and OpenAI-ES: a tiny run end to end
(CNN policy on [10, 10, C] frames), its run folder, and the replay of the GA's elite genome."""

import json
import math

import pytest

from evojax_lab import cli

GAMES = ["Breakout-MinAtar", "Asterix-MinAtar", "Freeway-MinAtar", "Seaquest-MinAtar",
         "SpaceInvaders-MinAtar"]
GENERATIONS = 2


def _finite(value):
    # metrics.jsonl writes non-finite floats as null
    return value is not None and (not isinstance(value, float) or math.isfinite(value))


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["deep_ga", "openai_es"])
@pytest.mark.parametrize("game", GAMES)
def test_minatar_trains_through_the_cli(game, strategy, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "--task", game, "--strategy", strategy, "--pop-size", "8",
            "--generations", str(GENERATIONS), "--log-every", str(GENERATIONS),
            "--eval-episodes", "0", "--final-episodes", "2", "--run-dir", str(run),
            "--no-progress"]
    if strategy == "deep_ga":  # the defaults' truncation (20) and validation exceed P = 8
        args += ["--truncation", "2", "--validation-episodes", "0"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out

    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == GENERATIONS
    assert [r["generation"] for r in rows] == list(range(1, GENERATIONS + 1))
    for row in rows:
        bad = {k: v for k, v in row.items() if not _finite(v)}
        assert not bad, f"non-finite metrics {bad}"
        assert row["num_nan"] == 0
    assert rows[-1]["steps"] > rows[0]["steps"] > 0

    summary = json.loads((run / "summary.json").read_text())
    assert summary["task"] == game and summary["strategy"] == strategy
    assert math.isfinite(summary["final_mean_return"]) and summary["final_episodes"] == 2

    if strategy == "deep_ga":
        # the summary line states how much smaller the genome is than the weights
        last = out.strip().splitlines()[-1]
        assert "elite genome" in last and "x smaller" in last, last
        genome = run / "elite.genome"
        assert genome.is_file()
        assert cli.main(["replay", str(genome), "--task", game, "--episodes", "2"]) == 0
        replay = capsys.readouterr().out
        assert f"{game}: mean return" in replay and "over 2 episodes" in replay, replay
    else:
        assert not (run / "elite.genome").exists()
