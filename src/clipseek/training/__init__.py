"""Floor 4: fine-tuning and training from scratch (contrastive loss, sampling, patch dropout, checkpoints)."""
