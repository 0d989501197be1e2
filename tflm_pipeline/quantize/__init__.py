"""Keras -> int8 flatbuffer: output-preserving rewrites (``rewrite``), the QAT scheme
(``scheme``), quantization-aware training models (``qat``) and the full-int8 conversion
(``int8``)."""
