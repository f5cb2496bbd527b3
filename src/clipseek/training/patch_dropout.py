"""Patch dropout (FLIP, Li et al. 2023): train the vision tower on a random share of each image's patches."""

from __future__ import annotations


class PatchDropout:
    """Drops a random share of each image's patch tokens while the vision tower trains: the encoder then
    runs on fewer tokens, so a step costs less, and the model sees more images in the same time. The class
    token always stays; positions were already added, so the kept patches keep theirs. A model in eval
    mode sees every patch, so the saved checkpoint is a plain CLIP.

    The draws come from the hook's own generator on the tokens' device (never torch's global one),
    started from `seed`; `reseed` starts it again (the loop does so every epoch, from the run's seed and
    the epoch, so a resumed run draws what an uninterrupted one would). Use as a context manager, or
    call `remove`, to take the hook off the model."""

    def __init__(self, model, share: float, seed: int = 0):
        self.share, self.seed, self._gen = share, seed, None
        self.handle = model.vision_model.embeddings.register_forward_hook(self._hook)

    def reseed(self, seed: int) -> None:
        self.seed, self._gen = seed, None

    def _generator(self, device):
        import torch

        if self._gen is None or self._gen.device != device:
            self._gen = torch.Generator(device=device).manual_seed(self.seed)
        return self._gen

    def _hook(self, module, inputs, out):
        import torch
        import torch.nn.functional as F

        if not module.training or self.share <= 0:
            return out
        b, t, d = out.shape
        keep = max(1, round((t - 1) * (1 - self.share)))
        noise = torch.rand(b, t - 1, device=out.device, generator=self._generator(out.device))
        patches = noise.argsort(dim=1)[:, :keep] + 1
        idx = F.pad(patches, (1, 0))  # token 0, the class token, first
        return out.gather(1, idx.unsqueeze(-1).expand(-1, -1, d))

    def remove(self) -> None:
        self.handle.remove()

    def __enter__(self) -> "PatchDropout":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()
