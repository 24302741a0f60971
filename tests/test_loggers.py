"""el.loggers: TensorBoard and Weights & Biases (offline, no network) loggers write what they
are given, and their files are read back here with readers written from the file formats
(TFRecord of ``Event`` protos; the W&B run file, a LevelDB-style log of ``Record`` protos)."""

import builtins
import json
import struct
import sys

import numpy as np
import pytest

import evojax_lab as el

ROWS = [
    {"generation": 1, "best_fitness": 2.0, "mean_fitness": -1.5, "steps": 100,
     "population_fitness": np.zeros(3)},
    {"generation": 2, "best_fitness": float("nan"), "mean_fitness": -0.5, "steps": 200,
     "population_fitness": np.zeros(3)},
    {"generation": 3, "best_fitness": 4.25, "mean_fitness": 0.5, "steps": 300,
     "population_fitness": np.zeros(3)},
]


def log_rows(logger, rows=ROWS, start=0):
    logger.start(start)
    for row in rows:
        logger(row["generation"], row)
    logger.close()


def hide_module(monkeypatch, module):
    real_import = builtins.__import__

    def without(name, *args, **kw):
        if name.startswith(module):
            raise ImportError(f"No module named {module!r}")
        return real_import(name, *args, **kw)

    monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.setattr(builtins, "__import__", without)


# -- TensorBoard ----------------------------------------------------------------------------------
def read_tfrecords(path):
    """Records of a TFRecord file: u64 length, u32 crc, data, u32 crc (crcs not checked)."""
    data, pos, out = path.read_bytes(), 0, []
    while pos < len(data):
        (n,) = struct.unpack("<Q", data[pos:pos + 8])
        out.append(data[pos + 12:pos + 12 + n])
        pos += 12 + n + 4
    return out


def tensorboard_scalars(logdir):
    from tensorboardX.proto import event_pb2

    values = {}
    for path in sorted(logdir.glob("events.out.tfevents.*")):
        for record in read_tfrecords(path):
            event = event_pb2.Event()
            event.ParseFromString(record)
            for v in event.summary.value:
                values.setdefault(v.tag, []).append((event.step, v.simple_value))
    return values


def test_tensorboard_logger_writes_scalars_per_generation(tmp_path):
    pytest.importorskip("tensorboardX")  # in the test extra: runs in CI
    log_rows(el.loggers.TensorBoardLogger(tmp_path / "tb"))
    values = tensorboard_scalars(tmp_path / "tb")
    assert set(values) == {"best_fitness", "mean_fitness", "steps"}  # no arrays, no generation
    assert values["best_fitness"] == [(1, 2.0), (3, 4.25)]  # the NaN is left out
    assert values["mean_fitness"] == [(1, -1.5), (2, -0.5), (3, 0.5)]
    assert values["steps"] == [(1, 100.0), (2, 200.0), (3, 300.0)]


def test_tensorboard_logger_names_the_extra_when_missing(tmp_path, monkeypatch):
    hide_module(monkeypatch, "tensorboardX")
    with pytest.raises(ImportError, match=r"pip install 'evojax_lab\[tensorboard\]'"):
        el.loggers.TensorBoardLogger(tmp_path / "tb")


# -- Weights & Biases -----------------------------------------------------------------------------
def read_wandb_records(path):
    """``Record`` protos of a W&B run file: a 7-byte header (``:W&B``, magic, version), then
    32 KiB blocks of records with 7-byte headers (crc32c, length, type: 1 full, 2 first,
    3 middle, 4 last); a block's tail shorter than a header is padding."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, records, part = 7, 32768, [], b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _, n, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 and n == 0:  # zero padding to the end of the block
            pos += left
            continue
        part += data[pos + 7:pos + 7 + n]
        pos += 7 + n
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(part)
            records.append(record)
            part = b""
    return records


def name(item):
    return item.key or "/".join(item.nested_key)  # newer W&B versions fill nested_key only


def wandb_history(directory):
    (path,) = directory.glob("wandb/offline-run-*/run-*.wandb")
    rows, config = [], {}
    for record in read_wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            row = {name(item): json.loads(item.value_json) for item in record.history.item}
            rows.append({k: v for k, v in row.items() if not k.startswith("_") or k == "_step"})
        elif kind in ("run", "config"):  # the settings given to wandb.init travel in "run"
            updates = record.run.config.update if kind == "run" else record.config.update
            config.update({name(item): json.loads(item.value_json) for item in updates})
    return rows, config


def test_wandb_logger_offline_writes_a_step_per_generation(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")  # in the test extra: runs in CI
    for name_, value in (("WANDB_SILENT", "true"), ("WANDB_DISABLE_GIT", "true"),
                         ("WANDB_CONFIG_DIR", tmp_path / "config"),
                         ("WANDB_CACHE_DIR", tmp_path / "cache"),
                         ("WANDB_DATA_DIR", tmp_path / "data")):
        monkeypatch.setenv(name_, str(value))  # nothing written outside tmp_path
    logger = el.loggers.WandbLogger("evojax-lab-test", directory=tmp_path, mode="offline",
                                    config={"task": "CartPole-v1", "pop_size": 8})
    log_rows(logger)
    # finish() can return before W&B's service process has written the file out (seen under
    # load): the service exits at teardown, so the file is whole after it.
    wandb.teardown()
    rows, config = wandb_history(tmp_path)
    assert rows == [
        {"_step": 1, "best_fitness": 2.0, "mean_fitness": -1.5, "steps": 100},
        {"_step": 2, "mean_fitness": -0.5, "steps": 200},  # the NaN is left out
        {"_step": 3, "best_fitness": 4.25, "mean_fitness": 0.5, "steps": 300},
    ]
    assert {k: v for k, v in config.items() if k != "_wandb"} == {"task": "CartPole-v1",
                                                               "pop_size": 8}


def test_wandb_logger_names_the_extra_when_missing(monkeypatch):
    hide_module(monkeypatch, "wandb")
    with pytest.raises(ImportError, match=r"pip install 'evojax_lab\[wandb\]'"):
        el.loggers.WandbLogger(mode="offline")


def test_wandb_logger_refuses_an_unknown_mode():
    pytest.importorskip("wandb")
    with pytest.raises(ValueError, match="mode must be 'online', 'offline', 'disabled' or None"):
        el.loggers.WandbLogger(mode="offlin")


def test_checkpoint_still_exports_the_file_loggers():
    assert el.checkpoint.JsonlLogger is el.loggers.JsonlLogger
    assert el.checkpoint.CsvLogger is el.loggers.CsvLogger
