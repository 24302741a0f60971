"""el.driver.run_in_blocks: block boundaries, callbacks in order, close after errors, and the
same run as one call bit for bit (from the start or from a carry part-way)."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import evojax_lab as el
from evojax_lab.driver import ProgressBar, logging, run_in_blocks

GENERATIONS = 7


@pytest.fixture(scope="module")
def trainer():
    task = el.tasks.function(lambda key, p: -jnp.sum((p["w"] - 1.0) ** 2))
    strategy = el.strategies.openai_es(8, sigma=0.1)
    return el.make_train(task, None, strategy, generations=GENERATIONS, eval_episodes=0,
                         params={"w": jnp.zeros(3)}, mesh=None)


@pytest.fixture(scope="module")
def reference(trainer):
    return trainer(jax.random.PRNGKey(3))


class Recorder:
    def __init__(self, name, log):
        self.name, self.log = name, log

    def start(self, generation):
        self.log.append((self.name, "start", generation))

    def block(self, block):
        self.log.append((self.name, "block", block.end, [r["generation"] for r in block.rows],
                         block.total))

    def close(self):
        self.log.append((self.name, "close"))


def assert_same(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_blocks_align_and_callbacks_run_in_order(trainer, reference):
    log = []
    carry, blocks = run_in_blocks(trainer, trainer.init(jax.random.PRNGKey(3)), block=3,
                                  align=5, callbacks=[Recorder("a", log), Recorder("b", log)])
    # 0 -> 3 (block), 3 -> 5 (the multiple of 5), 5 -> 7 (the end)
    assert log == [("a", "start", 0), ("b", "start", 0),
                   ("a", "block", 3, [1, 2, 3], 7), ("b", "block", 3, [1, 2, 3], 7),
                   ("a", "block", 5, [4, 5], 7), ("b", "block", 5, [4, 5], 7),
                   ("a", "block", 7, [6, 7], 7), ("b", "block", 7, [6, 7], 7),
                   ("a", "close"), ("b", "close")]
    assert_same(trainer.result(carry, blocks), reference)


def test_a_run_continued_from_a_carry_is_the_same_run(trainer, reference):
    carry, first = run_in_blocks(trainer, trainer.init(jax.random.PRNGKey(3)), block=2)
    assert [len(b["generation"]) for b in first] == [2, 2, 2, 1]
    head, _ = trainer.run(trainer.init(jax.random.PRNGKey(3)), 4)
    log = []
    carry, rest = run_in_blocks(trainer, head, start=4, block=10,
                                callbacks=[Recorder("r", log)])
    assert log == [("r", "start", 4), ("r", "block", 7, [5, 6, 7], 7), ("r", "close")]
    assert_same(carry.state, reference.state)
    np.testing.assert_array_equal(np.asarray(reference.metrics["mean_fitness"])[4:],
                                  rest[0]["mean_fitness"])
    assert_same(trainer.result(carry, first[:2] + rest), reference)


def test_close_runs_after_an_error_and_the_error_surfaces(trainer):
    log = []

    class Failing(Recorder):
        def block(self, block):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        run_in_blocks(trainer, trainer.init(jax.random.PRNGKey(3)), block=3,
                      callbacks=[Failing("f", log), Recorder("r", log)])
    assert log[-2:] == [("f", "close"), ("r", "close")]
    assert ("r", "block", 3, [1, 2, 3], 7) not in log  # the failing callback stopped the block


def test_logging_hands_every_row_to_a_logger(trainer, reference):
    seen = []
    run_in_blocks(trainer, trainer.init(jax.random.PRNGKey(3)), block=4,
                  callbacks=[logging(lambda g, row: seen.append((g, row["mean_fitness"])))])
    assert [g for g, _ in seen] == list(range(1, GENERATIONS + 1))
    np.testing.assert_array_equal([m for _, m in seen], reference.metrics["mean_fitness"])


def test_progress_bar_counts_generations(trainer, capsys):
    run_in_blocks(trainer, trainer.init(jax.random.PRNGKey(3)), block=4,
                  callbacks=[ProgressBar(GENERATIONS, "driver test")])
    err = capsys.readouterr().err
    assert "driver test" in err and "7/7" in err and "best=" in err


@pytest.mark.parametrize("options, message", [({"block": 0}, "block must be >= 1, got 0"),
                                              ({"align": 0}, "align must be >= 1, got 0")])
def test_bad_block_sizes_raise(trainer, options, message):
    with pytest.raises(ValueError, match=message):
        run_in_blocks(trainer, trainer.init(jax.random.PRNGKey(3)), **options)


def test_checkpointing_keeps_the_last_ones(trainer, reference, tmp_path):
    result = el.checkpoint.run_with_checkpoints(trainer, jax.random.PRNGKey(3), tmp_path,
                                                every=2, block=1, keep=3)
    assert_same(result, reference)
    # saves at 2, 4, 6, 7: the newest three; each appended one metrics segment
    assert el.storage.steps(tmp_path) == [4, 6, 7]
    assert sorted(p.name for p in (el.storage.root(tmp_path) / "metrics").iterdir()) == [
        "00000000-00000002.ckpt", "00000002-00000004.ckpt", "00000004-00000006.ckpt",
        "00000006-00000007.ckpt"]
    # a kept step whose manifest cannot be read: pruning removes no segment it might need
    segments = sorted((el.storage.root(tmp_path) / "metrics").iterdir())
    (el.storage.step_dir(tmp_path, 4) / "manifest.json").write_text("{")
    (el.storage.root(tmp_path) / "metrics" / "00000007-00000009.ckpt").write_bytes(b"stale")
    el.storage.prune(tmp_path, 3)
    assert len(sorted((el.storage.root(tmp_path) / "metrics").iterdir())) == len(segments) + 1
    with pytest.raises(ValueError, match="keep must be >= 1, got 0"):
        el.checkpoint.run_with_checkpoints(trainer, jax.random.PRNGKey(3), tmp_path, keep=0)


def test_a_relative_run_folder_checkpoints_and_resumes(trainer, reference, tmp_path,
                                                      monkeypatch):
    """The CLI's default run folder is relative (runs/...), and orbax needs absolute paths."""
    import shutil

    monkeypatch.chdir(tmp_path)
    result = el.checkpoint.run_with_checkpoints(trainer, jax.random.PRNGKey(3), "runs/rel",
                                                every=2, block=1, keep=2)
    assert_same(result, reference)
    assert el.storage.steps("runs/rel") == [6, 7]
    shutil.rmtree(el.storage.step_dir("runs/rel", 7))
    again = el.checkpoint.run_with_checkpoints(trainer, jax.random.PRNGKey(3), "runs/rel",
                                               every=2, block=1)
    assert_same(again, reference)


def test_a_fresh_run_moves_the_checkpoints_it_finds_aside(trainer, reference, tmp_path):
    el.checkpoint.run_with_checkpoints(trainer, jax.random.PRNGKey(3), tmp_path, every=4,
                                       block=1)
    before = {p.relative_to(tmp_path): p.read_bytes()
              for p in el.storage.root(tmp_path).rglob("*") if p.is_file()}
    with pytest.warns(UserWarning, match="moved to checkpoints.replaced-1"):
        result = el.checkpoint.run_with_checkpoints(trainer, jax.random.PRNGKey(3), tmp_path,
                                                    every=2, block=1, keep=3, resume=False)
    assert_same(result, reference)
    assert el.storage.steps(tmp_path) == [4, 6, 7]
    aside = tmp_path / "checkpoints.replaced-1"
    after = {Path("checkpoints") / p.relative_to(aside): p.read_bytes()
             for p in aside.rglob("*") if p.is_file()}
    assert after == before  # moved whole, nothing rewritten
