"""``.tflite`` bytes -> facts: the validated flatbuffer (ops, tensors, quantization),
tensor names, quantization maths, per-layer MACs and TFLM's memory plan.  This wing
never imports TensorFlow or the TFLM runtime."""
