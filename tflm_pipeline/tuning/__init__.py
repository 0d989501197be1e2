"""``tflmp tune``'s parts: the search space and limits, the feasibility check before
training, the Optuna study, and the trials table."""
