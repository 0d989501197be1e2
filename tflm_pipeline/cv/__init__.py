"""Cross-validation (``tflmp train --cv K``): K folds over train+val, each trained with
the run's recipe (float -> PTQ int8 -> QAT int8) and scored in TFLM on its held-out part."""
