"""Training on several devices or machines with ``tf.distribute``.

``--strategy mirrored`` trains on every local device (GPUs; one CPU device otherwise);
``--strategy multi-worker`` runs one process per machine, each started with the same
command and its own ``TF_CONFIG``.  The global batch is split across replicas and the
training data is sharded by tf.data; gradients are all-reduced every step, so every
worker holds the same weights and takes the same early-stopping and learning-rate
decisions.  Worker 0 (or the ``chief``) writes the run folder; the others keep their
checkpoints in a scratch folder and stop once QAT fine-tuning is over, since
conversion and the TFLM evaluation need one process only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os

from ..config import STRATEGIES
from ..errors import TflmpError
from ..tf_env import load

log = logging.getLogger(__name__)


class Distribution:
    """The strategy of a run (None: the default, one process)."""

    def __init__(self, name: str | None):
        self.name = name
        self.strategy = None
        self.task_type, self.task_index = "worker", 0
        if name is None:
            return
        if name not in STRATEGIES:
            raise TflmpError(f"--strategy must be one of {', '.join(STRATEGIES)}, not '{name}'")
        if name == "multi-worker":  # a bad TF_CONFIG is one line before TensorFlow loads
            self.task_type, self.task_index, workers = _tf_config()
        tf, _, _ = load()
        if name == "mirrored":
            self.strategy = tf.distribute.MirroredStrategy()
        else:
            self.strategy = tf.distribute.MultiWorkerMirroredStrategy()
            log.info("multi-worker: %s %d of %d (%d replicas)", self.task_type,
                     self.task_index, workers, self.strategy.num_replicas_in_sync)

    @property
    def is_chief(self) -> bool:
        """Whether this process writes the run folder and goes on after training."""
        if self.name != "multi-worker":
            return True
        return self.task_type == "chief" or (self.task_type == "worker" and self.task_index == 0
                                             and not _has_chief())

    def scope(self):
        """Where models and optimizers must be created to train distributed."""
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()


def _tf_config() -> tuple[str, int, int]:
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise TflmpError("--strategy multi-worker needs TF_CONFIG, e.g. "
                         '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                         '"task": {"type": "worker", "index": 0}} (see the README)')
    try:
        cfg = json.loads(raw)
        cluster, task = cfg["cluster"], cfg["task"]
        workers = len(cluster.get("worker", [])) + len(cluster.get("chief", []))
        task_type, index = task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise TflmpError(f"TF_CONFIG is not valid ({type(e).__name__}: {e}); it needs "
                         "'cluster' with a 'worker' list and 'task' with 'type' and "
                         "'index'") from None
    if task_type not in ("worker", "chief") or not 0 <= index < len(cluster.get(task_type, [])):
        raise TflmpError(f"TF_CONFIG task {task_type} {index} is not in its cluster "
                         f"{json.dumps(cluster)}")
    return task_type, index, workers


def _has_chief() -> bool:
    return bool(json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {}).get("chief"))
