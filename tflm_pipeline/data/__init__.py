"""Raw files -> :class:`Dataset` + :class:`~tflm_pipeline.preprocessing.Preprocessing`.

One loader per kind (``builtin`` digits/MNIST, ``npz``, ``sensor_csv``, ``ts_file``,
``image_folder``, ``wav_folder``), chosen in one table by :func:`load_dataset` from a :class:`DataSpec`;
``splits`` (seeded, stratified), ``audio_frontend`` (log-mel, MFCC by the firmware's C;
``audio_features`` is their float definition) and ``augment`` serve them.  TensorFlow is imported only to build an image augmenter.
"""

from ..preprocessing import Preprocessing
from .dataset import Dataset
from .load import load_dataset, load_run_dataset, task_hint
from .spec import DataSpec, parse_size, parse_split

__all__ = ["DataSpec", "Dataset", "Preprocessing", "load_dataset", "load_run_dataset",
           "parse_size", "parse_split", "task_hint"]
