"""Imports TensorFlow the one way TFMOT works with it: Keras 2 (``tf_keras``).

``TF_USE_LEGACY_KERAS=1`` must be set before TensorFlow is first imported; every
module that needs TF gets it from :func:`load` so the order can never go wrong.
TensorFlow's native start-up chatter is kept off the terminal unless something fails.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import warnings

from .errors import TflmpError

_loaded = None


@contextlib.contextmanager
def quiet_native_stderr():
    """Send file descriptor 2 to a temporary file for the block.

    TensorFlow and the TFLite converter print from C++ straight to fd 2 (oneDNN
    notices, "fully_quantize: ..."); Python's ``contextlib.redirect_stderr`` cannot
    catch that.  If the block raises, the captured text is replayed so nothing that
    explains a failure is lost.  ``TFLMP_VERBOSE=1`` disables the capture.
    """
    if os.environ.get("TFLMP_VERBOSE") == "1":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        except BaseException:
            sys.stderr.flush()
            os.dup2(saved, 2)
            capture.seek(0)
            sys.stderr.write(capture.read().decode("utf-8", "replace"))
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def load():
    """Return ``(tf, keras, tfmot)`` with Keras 2; raise if Keras 3 is already active.

    ``tfmot`` is imported on its first use (about 1.5 s): a run whose PTQ model needs no
    QAT never pays for it.
    """
    global _loaded
    if _loaded is not None:
        return _loaded
    if "tensorflow" in sys.modules and os.environ.get("TF_USE_LEGACY_KERAS") != "1":
        raise TflmpError(
            "TensorFlow was imported before tflmp with Keras 3; set TF_USE_LEGACY_KERAS=1 "
            "before importing TensorFlow (TFMOT quantization-aware training needs Keras 2)"
        )
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with quiet_native_stderr():
        import tensorflow as tf
        import tf_keras as keras

        tf.config.list_physical_devices()  # probes CUDA now, while its complaints are caught
    tf.get_logger().setLevel("ERROR")
    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)
    _loaded = (tf, keras, _LazyTfmot())
    return _loaded


class _LazyTfmot:
    """``tensorflow_model_optimization``, imported when an attribute is first read."""

    _module = None

    def __getattr__(self, name: str):
        if _LazyTfmot._module is None:
            with quiet_native_stderr(), warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # TFMOT's distutils use
                import tensorflow_model_optimization as tfmot
            _LazyTfmot._module = tfmot
        return getattr(_LazyTfmot._module, name)
