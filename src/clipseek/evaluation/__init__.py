"""Floor 5: accuracy, calibration and retrieval metrics (pure), the evaluation run, and its report."""
