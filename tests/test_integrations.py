"""Integrations on tiny real models of their libraries: rows equal the plain tracker's on the same losses."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import heavytail as ht
from heavytail.integrations.hf import shifted_token_losses
from heavytail.store import Store

COUNTS = np.array([400, 200, 90, 60, 30, 12, 5, 2, 1, 1, 0, 0])  # the vocabulary / classes of the tiny models


def _assert_rows_equal(got, expected):
    assert [r["step"] for r in got] == [r["step"] for r in expected]
    for a, b in zip(got, expected):
        assert a["samples"] == b["samples"]
        np.testing.assert_allclose(a["group_loss"], b["group_loss"], rtol=1e-5)
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-5)
        if b["group_accuracy"] is not None:
            np.testing.assert_allclose(a["group_accuracy"], b["group_accuracy"], rtol=1e-5)


def _replay(batches, log_steps):
    """The plain tracker on recorded (losses, targets, logits) batches, logging after the given batch indices."""
    tracker = ht.GroupTracker(COUNTS, num_groups=4)
    rows = []
    for index, (losses, targets, logits) in enumerate(batches):
        tracker.update(losses, targets, logits)
        if index in log_steps:
            rows.append(tracker.log(log_steps[index]))
    return rows


def test_lightning_callback_gives_the_rows_of_the_plain_tracker(tmp_path):
    import lightning.pytorch as pl

    from heavytail.integrations.lightning import GroupLossCallback

    class Classifier(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, len(COUNTS)))
            self.seen = []

        def training_step(self, batch, batch_idx):
            x, y = batch
            logits = self.net(x)
            losses = F.cross_entropy(logits, y, reduction="none")
            self.seen.append((losses.detach().clone(), y.clone(), logits.detach().clone()))
            return {"loss": losses.mean(), "losses": losses.detach(), "targets": y, "logits": logits.detach()}

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.5)

    generator = torch.Generator().manual_seed(0)
    y = torch.multinomial(torch.as_tensor(COUNTS, dtype=torch.float), 70, replacement=True, generator=generator)
    x = torch.randn(70, 8, generator=generator)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=10)
    pl.seed_everything(0)
    module = Classifier()
    tracker = ht.GroupTracker(COUNTS, num_groups=4, name="lightning", store=tmp_path)
    callback = GroupLossCallback(tracker, every_n_steps=3)
    trainer = pl.Trainer(
        max_steps=7,
        accelerator="cpu",
        logger=False,
        callbacks=[callback],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, loader)
    # batch i ends at global step i + 1: rows after steps 3 and 6, and the last one at the end (step 7)
    expected = _replay(module.seen, {2: 3, 5: 6, 6: 7})
    _assert_rows_equal(callback.rows, expected)
    stored = Store(tmp_path).load("lightning")
    assert stored.status == "complete" and stored.history.step.tolist() == [3, 6, 7]


def test_hf_trainer_callback_gives_the_rows_of_the_plain_tracker_on_a_tiny_gpt2(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

    from heavytail.integrations.hf import GroupLossCallback

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(COUNTS), n_positions=16, n_embd=16, n_layer=2, n_head=2))
    generator = torch.Generator().manual_seed(1)
    tokens = torch.multinomial(
        torch.as_tensor(COUNTS, dtype=torch.float), 12 * 10, replacement=True, generator=generator
    )
    examples = [{"input_ids": row, "labels": row.clone()} for row in tokens.view(12, 10)]
    examples[0]["labels"][-3:] = -100  # padding is ignored

    seen = []

    def record(module, args, kwargs, output):  # the test's own copy of what the model computed
        if module.training:
            seen.append(
                (
                    output.loss.detach(),
                    output.logits.detach().clone(),
                    kwargs["labels"].clone(),
                    kwargs.get("num_items_in_batch"),
                )
            )

    model.register_forward_hook(record, with_kwargs=True)
    tracker = ht.GroupTracker(COUNTS, num_groups=4, name="gpt2", store=tmp_path)
    callback = GroupLossCallback(tracker, every_n_steps=2)
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4,
        max_steps=5,
        learning_rate=1e-2,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        logging_steps=100,
        dataloader_drop_last=False,
        seed=0,
    )
    Trainer(model=model, args=args, train_dataset=examples, callbacks=[callback]).train()

    assert len(seen) == 5
    batches = []
    for loss, logits, labels, num_items in seen:
        losses, targets, shifted = shifted_token_losses(logits, labels)
        # shifted as the model does: the model's loss is the same token sum, over its own normaliser
        normaliser = (targets != -100).sum() if num_items is None else num_items
        assert losses.sum().item() == pytest.approx((loss * normaliser).item(), rel=1e-5)
        batches.append((losses, targets, shifted))
    _assert_rows_equal(callback.rows, _replay(batches, {1: 2, 3: 4, 4: 5}))
    assert Store(tmp_path).load("gpt2").history.step.tolist() == [2, 4, 5]


def _rows_for_loggers(loggers):
    tracker = ht.GroupTracker(COUNTS, num_groups=4, loggers=loggers)
    generator = torch.Generator().manual_seed(0)
    rows = []
    for step in (10, 20, 30):
        targets = torch.randint(0, len(COUNTS), (32,), generator=generator)
        logits = torch.randn(32, len(COUNTS), generator=generator)
        tracker.update(F.cross_entropy(logits, targets, reduction="none"), targets, logits)
        rows.append(tracker.log(step))
    return rows


def test_tensorboard_event_files_hold_the_group_scalars(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from heavytail.integrations.tensorboard import TensorBoardLogger

    logger = TensorBoardLogger(tmp_path / "tb")
    rows = _rows_for_loggers([logger])
    logger.writer.close()
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert {f"group_loss/g{g}" for g in range(4)} <= set(events.Tags()["scalars"])
    for g in range(4):
        scalars = events.Scalars(f"group_loss/g{g}")
        assert [s.step for s in scalars] == [10, 20, 30]
        np.testing.assert_allclose([s.value for s in scalars], [r["group_loss"][g] for r in rows], rtol=1e-6)
    np.testing.assert_allclose(
        [s.value for s in events.Scalars("group_accuracy/g0")], [r["group_accuracy"][0] for r in rows], rtol=1e-6
    )


def _wandb_history(path):
    """History rows of an offline ``.wandb`` file (a LevelDB-style log of protobuf records), {step: {key: value}}."""
    import json
    import struct

    from wandb.proto import wandb_internal_pb2

    data, offset, block, pending, rows = Path(path).read_bytes(), 7, 32768, b"", {}
    while offset + 7 <= len(data):
        if block - offset % block < 7:  # block trailer padding
            offset += block - offset % block
            continue
        _, length, kind = struct.unpack("<IHB", data[offset : offset + 7])
        pending += data[offset + 7 : offset + 7 + length]
        offset += 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            if record.WhichOneof("record_type") == "history":
                items = {
                    item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item
                }
                rows[items["_step"]] = items
    return rows


def test_wandb_offline_run_receives_the_group_metrics(tmp_path, monkeypatch):
    import wandb

    from heavytail.integrations.wandb import WandbLogger

    monkeypatch.setenv("WANDB_SILENT", "true")
    run = wandb.init(project="heavytail-test", dir=str(tmp_path), mode="offline")
    try:
        rows = _rows_for_loggers([WandbLogger(run)])
    finally:
        run.finish()
        wandb.teardown()  # stops wandb's service process, which flushes the run file
    (path,) = [os.path.join(d, f) for d, _, files in os.walk(tmp_path) for f in files if f.endswith(".wandb")]
    history = _wandb_history(path)
    assert sorted(history) == [10, 20, 30]
    for row in rows:
        logged = history[row["step"]]
        np.testing.assert_allclose([logged[f"group_loss/g{g}"] for g in range(4)], row["group_loss"], rtol=1e-12)
        assert logged["group_loss/all"] == pytest.approx(row["loss"], rel=1e-12)
