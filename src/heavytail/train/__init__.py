"""Training loop, per-class statistics, frequency groups and histories."""

from heavytail.train.history import History, HistoryRecorder
from heavytail.train.loop import TrainResult, auto_chunk_size, train
from heavytail.train.metrics import ClassStats, FrequencyGroups

__all__ = ["ClassStats", "FrequencyGroups", "History", "HistoryRecorder", "TrainResult", "auto_chunk_size", "train"]
