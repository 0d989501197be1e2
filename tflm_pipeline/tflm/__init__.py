"""The device's interpreter: TFLM in child processes, the harness that scores a model
over a dataset in it, and the parity ladder from Keras down to TFLM."""
