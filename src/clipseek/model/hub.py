"""Is the Hugging Face hub reachable? Asked once per process, before a hub id is loaded.

Without a network, huggingface_hub retries every metadata request five times (1+2+4+8+8 s), so
`clipseek index DIR` with the default hub model sat silent for ~46 s before its error line. One TCP
connect to the hub's host (3 s at most) decides instead: unreachable -> this process uses the local
Hugging Face cache only (huggingface_hub's offline mode, what HF_HUB_OFFLINE=1 asks for), so a
cached model loads at once and a missing one fails at once with clipseek's own message.
"""

from __future__ import annotations

import os
import socket
import sys
from urllib.parse import urlparse

PROBE_TIMEOUT_S = 3.0
_offline: bool | None = None  # the answer, once asked


def _env_offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "on", "yes", "true")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


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
    """True when hub downloads are off for this process: asked by the user (HF_HUB_OFFLINE=1) or the
    hub did not answer the probe, in which case offline mode is switched on here."""
    global _offline
    if _offline is None:
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
        _offline = _env_offline() or not reachable(endpoint)
        if _offline and not _env_offline():
            os.environ["HF_HUB_OFFLINE"] = "1"  # for huggingface_hub when it is imported later
            constants = sys.modules.get("huggingface_hub.constants")
            if constants is not None:  # already imported: it read the variable at import
                constants.HF_HUB_OFFLINE = True
    return _offline
