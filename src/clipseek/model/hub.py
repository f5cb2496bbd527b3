"""Is the Hugging Face hub reachable? Asked once per process, before a hub id is loaded.

Without a network, huggingface_hub retries every metadata request five times (1+2+4+8+8 s, ~46 s of
silence before an error). One TCP connect to the hub's host (3 s at most) decides instead: unreachable -> this
process uses the local
Hugging Face cache only (huggingface_hub's offline mode, what HF_HUB_OFFLINE=1 asks for), so a
cached model loads at once and a missing one fails at once with clipseek's own message.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

PROBE_TIMEOUT_S = 3.0
_probed = False


def reachable(endpoint: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """True when a TCP connection to the endpoint's host and port opens within `timeout` seconds."""
    url = urlparse(endpoint)
    port = url.port or (80 if url.scheme == "http" else 443)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout):
            return True
    except OSError:  # no DNS, refused, unreachable, timed out
        return False


def offline() -> bool:
    """True when hub downloads are off for this process: asked by the user (HF_HUB_OFFLINE=1,
    TRANSFORMERS_OFFLINE=1, as huggingface_hub reads them) or the hub did not answer the probe, in
    which case huggingface_hub's offline mode is switched on here (and for child processes)."""
    global _probed
    from huggingface_hub import constants

    if not _probed and not constants.is_offline_mode():
        _probed = True
        if not reachable(constants.ENDPOINT):
            constants.HF_HUB_OFFLINE = True
            os.environ["HF_HUB_OFFLINE"] = "1"
    return constants.is_offline_mode()
