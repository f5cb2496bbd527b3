"""Without a network, a hub model fails (or loads from the cache) at once, with one line."""

import os
import socket
import subprocess
import sys

import pytest

from clipseek.model import hub
from helpers import make_image

REFUSED = "http://127.0.0.1:9"  # the discard port: nothing listens there


@pytest.fixture
def fresh_probe(monkeypatch):
    import huggingface_hub.constants as constants

    monkeypatch.setattr(hub, "_probed", False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # restored after the test (offline() may set it)
    return constants


def test_reachable_sees_a_listening_port_and_a_refused_one():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert hub.reachable(f"http://127.0.0.1:{server.getsockname()[1]}")
    assert not hub.reachable(REFUSED, timeout=1)


def test_an_unreachable_hub_switches_this_process_to_the_cache_only(fresh_probe, monkeypatch):
    monkeypatch.setattr(fresh_probe, "ENDPOINT", REFUSED)
    assert hub.offline() is True
    assert fresh_probe.HF_HUB_OFFLINE is True and os.environ["HF_HUB_OFFLINE"] == "1"


def test_offline_asked_by_the_user_needs_no_probe(fresh_probe, monkeypatch):
    monkeypatch.setattr(fresh_probe, "HF_HUB_OFFLINE", True)  # what HF_HUB_OFFLINE=1 gives at import
    monkeypatch.setattr(hub, "reachable", lambda *a, **k: pytest.fail("probed although offline was asked"))
    assert hub.offline() is True


def test_cli_without_network_gives_one_line_at_once(tmp_path):
    """Before: huggingface_hub retried each file 5 times (about 46 s) and printed each retry."""
    photos = tmp_path / "photos"
    photos.mkdir()
    make_image(0).save(photos / "a.png")
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_ENDPOINT=REFUSED, HF_HOME=str(tmp_path / "hf"))
    r = subprocess.run([sys.executable, "-m", "clipseek.cli", "index", str(photos), "--db", str(tmp_path / "g.db"),
                        "--model", "openai/clip-vit-base-patch32"],
                       capture_output=True, text=True, env=env, timeout=40)
    assert r.returncode == 1
    lines = [line for line in r.stderr.splitlines() if line.strip() and not line.endswith("...")]  # phases aside
    assert len(lines) == 1 and lines[0].startswith("clipseek: error: "), r.stderr
    assert "the hub is not reachable" in r.stderr and "--model PATH" in r.stderr
