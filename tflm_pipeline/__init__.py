"""tflmp: train Keras models, quantize them (QAT/PTQ) to int8, and verify them in the
real TensorFlow Lite Micro interpreter before they reach a microcontroller.

Stages are modules with one public job each: ``data``, ``train``, ``qat``,
``convert``, ``model_info``, ``emulate``, ``codegen``, ``report``; ``pipeline``
chains them for ``tflmp train``.  Importing this package does not import TensorFlow.
"""

__version__ = "0.1.0"
