"""Floor 5: fine-tuning and training from scratch (contrastive loss, sampling, patch dropout, checkpoints)."""
