// The Chirale_TensorFlowLite library header a Nano 33 BLE sketch includes; its TFLM
// headers come from the tree `tflmp firmware --check --tflm-dir` compiles against.
#pragma once
