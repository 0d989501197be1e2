"""The float Keras model: fit with callbacks and resume (``fit``), Keras files with the
Lambda guard (``keras_io``), training on several devices or machines (``distribute``)."""
