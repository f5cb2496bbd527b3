"""Floor 5: fine-tuning and training from scratch.

`loop` (TrainConfig, `train`: the epochs), `batches` (decode, cache and batch the pairs that
`clipseek.data.pairs` reads; hard-negative batches), `loss` (contrastive loss, in-batch positives),
`patch_dropout` (FLIP), `optim` (frozen towers, param groups, AdamW, warm-up + cosine schedule, the
optimizer step), `checkpoint` (the run folder: checks before a run, the starting checkpoint, save as one
folder swap, resume, recovery after a kill).
"""
