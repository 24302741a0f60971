"""Plots from run folders: which files give which pictures, their names, labels and errors.

The run folders are written here by hand (no training): metrics rows, a maze behavior array,
sensitivities and ES-vs-SGD points, following the conventions of evojax_lab.plots."""

import json
import subprocess
import sys

import matplotlib
import numpy as np
import pytest

from evojax_lab import cli, plots

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture()
def svg_text(monkeypatch):
    """SVG output with text kept as <text> elements, so labels can be checked."""
    monkeypatch.setitem(matplotlib.rcParams, "svg.fonttype", "none")


def write_run(path, task="hard_maze", behavior=True, sensitivity=True, es_vs_sgd=True):
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps({"task": task, "strategy": "nsr_es",
                                                  "pop_size": 4, "seed": 0}))
    rows = [{"generation": g, "steps": 100.0 * g, "best_fitness": -50.0 + g,
             "mean_fitness": -80.0 + g, "solution_fitness": None if g == 1 else -60.0 + g}
            for g in range(1, 6)]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if behavior:
        rng = np.random.default_rng(0)
        np.save(path / "population_behavior.npy",
                rng.uniform([40, 10], [260, 290], size=(5, 4, 2)).astype(np.float32))
    if sensitivity:
        s = np.array([0.0, 0.0, 1e-3, 1e-2, 0.1, 1.0, 10.0, 3.0, 0.5, 2e-4])
        np.savez(path / "sensitivity.npz", sum=s, abs=np.abs(s) + 1.0)
    if es_vs_sgd:
        pts = [{"method": m, "x": x, "y": y, "metric": "test accuracy",
                "x_label": "training steps"}
               for m, scale in (("es", 0.8), ("sgd", 0.95))
               for x, y in ((0, 0.1), (100, 0.5 * scale), (200, scale))]
        (path / "es_vs_sgd.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pts))
    return path


def test_plot_run_draws_one_picture_per_file(tmp_path):
    run = write_run(tmp_path / "run")
    written = plots.plot_run(run)
    names = ["curve.png", "maze.png", "sensitivity.png", "es_vs_sgd.png"]
    assert [p.name for p in written] == names
    for name in names:
        assert (run / name).read_bytes()[:8] == PNG, name


def test_out_names_the_curve_and_the_others_next_to_it(tmp_path):
    run = write_run(tmp_path / "run")
    written = plots.plot_run(run, tmp_path / "out" / "fig.pdf")
    assert [p.name for p in written] == ["fig.pdf", "fig_maze.pdf", "fig_sensitivity.pdf",
                                         "fig_es_vs_sgd.pdf"]
    for p in written:
        assert p.read_bytes()[:5] == b"%PDF-"
    assert not (run / "curve.png").exists()


def test_maze_picture_only_for_maze_tasks(tmp_path):
    run = write_run(tmp_path / "run", task="CartPole-v1", sensitivity=False, es_vs_sgd=False)
    assert [p.name for p in plots.plot_run(run)] == ["curve.png"]
    for task in plots.MAZE_TASKS:
        run = write_run(tmp_path / task, task=task, sensitivity=False, es_vs_sgd=False)
        assert [p.name for p in plots.plot_run(run)] == ["curve.png", "maze.png"]


def test_labels_carry_the_data(tmp_path, svg_text):
    s = {"sum": np.array([0.0, 0.0, 0.0, 1e-3, 2.0]), "so": np.array([[1.0, 2.0], [3.0, 4.0]])}
    plots.sensitivity_histogram(s, tmp_path / "s.svg")
    text = (tmp_path / "s.svg").read_text()
    assert "sum (N = 5, 3 zero)" in text and "so (N = 4)" in text  # zeros counted by hand
    assert "log10 sensitivity per weight" in text
    rows = [{"method": "es", "x": 0, "y": 1.0}, {"method": "sgd", "x": 0, "y": 2.0},
            {"method": "es", "x": 1, "y": 1.5, "metric": "loss", "x_label": "epochs"}]
    plots.es_vs_sgd_curves(rows, tmp_path / "e.svg", title="MNIST")
    text = (tmp_path / "e.svg").read_text()
    for label in ("MNIST", "score", "loss", "epochs", ">es<", ">sgd<"):
        assert label in text, label
    plots.maze_positions(np.zeros((3, 2, 2)), tmp_path / "m.svg")
    assert "final positions of 6 evaluated individuals" in (tmp_path / "m.svg").read_text()


PLOTS_KEEP_THE_BACKEND = """
import sys
import matplotlib
matplotlib.use(sys.argv[1])
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from evojax_lab import plots

rows = [{"generation": g, "steps": 10.0 * g, "best_fitness": float(g)} for g in range(1, 4)]
figures = [
    plots.learning_curve(rows),
    plots.maze_positions(np.zeros((2, 3, 2))),
    plots.sensitivity_histogram({"sum": np.array([1e-3, 1.0])}),
    plots.es_vs_sgd_curves([{"method": "es", "x": 0, "y": 1.0}]),
]
print(matplotlib.get_backend(), [type(f).__name__ for f in figures], plt.get_fignums())
figures[0].savefig(sys.argv[2])
"""


@pytest.mark.parametrize("backend", ["svg", "pdf"])
def test_plots_return_figures_and_keep_the_backend(tmp_path, backend):
    # A fresh interpreter: the backend a notebook or script chose before the first plot.
    out = subprocess.run(
        [sys.executable, "-c", PLOTS_KEEP_THE_BACKEND, backend, str(tmp_path / "curve.png")],
        capture_output=True, text=True, check=True,
    ).stdout.split("\n")[0]
    assert out == f"{backend} ['Figure', 'Figure', 'Figure', 'Figure'] []"
    # The caller saves (or adjusts) the returned figure; the format comes from the suffix.
    assert (tmp_path / "curve.png").read_bytes()[:8] == PNG


def test_a_path_saves_the_figure_it_returns(tmp_path):
    from matplotlib.figure import Figure

    rows = [{"generation": 1, "best_fitness": 1.0}, {"generation": 2, "best_fitness": 3.0}]
    fig = plots.learning_curve(rows, tmp_path / "c.png", title="two rows")
    assert isinstance(fig, Figure) and fig.get_suptitle() == "two rows"
    assert (tmp_path / "c.png").read_bytes()[:8] == PNG
    assert list(tmp_path.iterdir()) == [tmp_path / "c.png"]
    line = fig.axes[0].get_lines()[0]  # best of population against generations
    assert line.get_xdata().tolist() == [1.0, 2.0] and line.get_ydata().tolist() == [1.0, 3.0]


def test_bad_inputs_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match=r"\[G, P, 2\] or \[N, 2\], got shape \(2, 3, 3\)"):
        plots.maze_positions(np.zeros((2, 3, 3)), tmp_path / "m.png")
    with pytest.raises(ValueError, match="point 1 lacks y"):
        plots.es_vs_sgd_curves([{"method": "es", "x": 0, "y": 1}, {"method": "es", "x": 1}],
                               tmp_path / "e.png")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="holds nothing to plot"):
        plots.plot_run(empty)
    with pytest.raises(ValueError, match="is not a run folder"):
        plots.plot_run(tmp_path / "missing")
    bad = write_run(tmp_path / "bad", behavior=False, sensitivity=False, es_vs_sgd=False)
    (bad / "metrics.jsonl").write_text('{"generation": 1}\n{"generation": 2, \n')
    with pytest.raises(ValueError, match="line 2 is not JSON"):
        plots.plot_run(bad)


def test_cli_plot_prints_the_pictures(tmp_path, capsys):
    run = write_run(tmp_path / "run", sensitivity=False, es_vs_sgd=False)
    assert cli.main(["plot", str(run)]) == 0
    assert capsys.readouterr().out.split() == [str(run / "curve.png"), str(run / "maze.png")]
    (run / "metrics.jsonl").write_text("not json\n")
    assert cli.main(["plot", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert "line 1 is not JSON" in err and len(err.splitlines()) == 1


def test_importing_plots_does_not_import_matplotlib():
    code = ("import sys, evojax_lab.plots; "
            "sys.exit(any(m.startswith('matplotlib') for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], timeout=300).returncode == 0
