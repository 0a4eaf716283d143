"""The operator guide's worked example (section 10) runs as written, on a real store.

Its shell blocks are taken from docs/operator-guide.md and run in order in
one bash script; only the first block (the example's places) is replaced by
this test's own: a store of django-oscar served on loopback, a temporary
configuration, workflows folder and knowledge base. ``sudo`` runs its command
as is (the test runs as the user it is), and ``sudo systemctl restart
agentd`` starts ``agentd serve`` in the background and waits until it
answers. The staff user's name and password are typed on stdin, as an
operator would at the ``read`` prompts.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentd.ops_config import DEFAULT_CHROMIUM
from agentd.vault import generate_key_file
from tests.backoffice.store import Store, StoreTemplate

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow(30),
    pytest.mark.skipif(not DEFAULT_CHROMIUM.is_file(), reason="Chromium is not installed"),
]

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "operator-guide.md"
CHAPTER = "## 10. Teach agentd your back-office"
VENV = Path(sys.executable).parent.parent

SHIMS = r"""
set -euo pipefail
sudo() {
    if [ "$*" = "systemctl restart agentd" ]; then
        "$AGENTD_VENV/bin/agentd" serve >>"$TEST_DAEMON_LOG" 2>&1 &
        echo $! >"$TEST_DAEMON_PID"
        for _ in $(seq 1 600); do
            if agentctl ping >/dev/null 2>&1; then return 0; fi
            sleep 0.1
        done
        echo "the daemon did not answer" >&2
        return 1
    fi
    "$@"
}
"""


def chapter_blocks() -> list[str]:
    text = GUIDE.read_text(encoding="utf-8")
    start = text.index(CHAPTER)
    end = text.find("\n## ", start + len(CHAPTER))
    chapter = text[start : end if end != -1 else len(text)]
    return re.findall(r"```sh\n(.*?)```", chapter, flags=re.S)


def test_the_chapter_names_its_places_first() -> None:
    first = chapter_blocks()[0]
    names = re.findall(r"^(?:export )?([A-Z_]+)=", first, flags=re.M)
    assert names == ["AGENTD_CONFIG", "WORKFLOWS", "KB", "STORE", "STORE_HOST", "AGENTD_VENV"]


@pytest.fixture
def store(store_template: StoreTemplate, short_tmp: Path) -> Iterator[Store]:
    (short_tmp / "store").mkdir()
    with Store(store_template, short_tmp / "store") as running:
        yield running


def test_the_worked_example_runs_as_written(
    store: Store, short_tmp: Path, daemon_env: dict[str, str]
) -> None:
    key = short_tmp / "vault.key"
    generate_key_file(key)
    config = short_tmp / "agentd.toml"
    config.write_text(f'[scheduler]\nenabled = false\n[vault]\nkey_file = "{key}"\n')
    places = (
        f'export AGENTD_CONFIG="{config}"\n'
        f'WORKFLOWS="{short_tmp / "workflows"}"\n'
        f'KB="{short_tmp / "kb.json"}"\n'
        f'STORE="{store.url}"\n'
        f'STORE_HOST="127.0.0.1:{store.port}"\n'
        f'AGENTD_VENV="{VENV}"\n'
    )
    blocks = chapter_blocks()
    script = SHIMS + places + "".join(blocks[1:])
    pid_file = short_tmp / "daemon.pid"
    env = {
        **os.environ,
        **daemon_env,
        "PATH": f"{VENV / 'bin'}:{os.environ['PATH']}",
        "TEST_DAEMON_LOG": str(short_tmp / "daemon.log"),
        "TEST_DAEMON_PID": str(pid_file),
    }
    before = store.product(store.product_id("BSG-KETTLE-1L"))
    try:
        done = subprocess.run(
            ["bash", "-c", script],
            input=f"{store.template.staff_username}\n{store.password}\n",
            capture_output=True,
            text=True,
            env=env,
            cwd=short_tmp,
            timeout=280,
        )
        log = (short_tmp / "daemon.log").read_text() if (short_tmp / "daemon.log").exists() else ""
        assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{log[-3000:]}"
        out = done.stdout
        # pytest ran the two workflow tests against the store.
        assert "2 passed" in out
        # The operation read the product; the change was approved, ran and was rolled back.
        assert "store_read_product_seo" in out and "completed" in out
        assert "rolled back (SOFT_UNDO)" in out
        kb = (short_tmp / "kb.json").read_text()
        assert '"origin": "store_steps.py:sign_in"' in kb
    finally:
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGTERM)
    after = store.product(store.product_id("BSG-KETTLE-1L"))
    # The pytest run changed the product first; the rollback put back what it was
    # before the approved change (the values the pytest run left).
    assert after["meta_title"] == "Kettle | Test" != before["meta_title"]
    assert after["meta_description"] == "Testing."
