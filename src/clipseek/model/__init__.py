"""Floor 3: checkpoints -> Encoders (unit vectors), their identity (Fingerprint), from-scratch configs."""
