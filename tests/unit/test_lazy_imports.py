"""Start-up stays light: anthropic and playwright load only when they are used.

Importing either takes most of a second (anthropic well over one on a busy
host), which every ``agentd serve`` and every ``agentd``/``agentctl`` command
would pay; cryptography (tens of milliseconds) loads only with a vault key.
Each check runs in a fresh interpreter and reads its ``sys.modules``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HEAVY = ("anthropic", "cryptography", "playwright")

REPORT = (
    "import json, sys; "
    f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r})))"
)


def _heavy_after(code: str, env: dict[str, str] | None = None) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\n{REPORT}"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout
    loaded: list[str] = json.loads(out.strip().splitlines()[-1])
    return loaded


def test_entry_points_import_neither_anthropic_nor_playwright() -> None:
    code = "import agentd.daemon, agentd.cli, agentd.ctl.main, agentd.store.backup"
    assert _heavy_after(code) == []


def test_wiring_the_daemon_with_a_model_configured_imports_neither(short_tmp: Path) -> None:
    # An API key configured: the daemon builds the model and the browser at start,
    # and reports the browser in status; neither client is loaded until it is called.
    env = {
        **os.environ,
        "AGENTD_STATE_DIR": str(short_tmp / "state"),
        "AGENTD_SOCKET_PATH": str(short_tmp / "s.sock"),
        "AGENTD_LOG_DIR": str(short_tmp / "logs"),
        "AGENTD_LLM__API_KEY": "sk-test-not-used",
    }
    env.pop("AGENTD_CONFIG", None)
    code = "\n".join(
        [
            "import anyio",
            "from agentd.config import load_settings",
            "from agentd.daemon import build_app",
            "app = build_app(load_settings(None))",
            "model = app.operations.agent.model",
            "assert model is not None, 'the API key was not picked up'",
            "assert app.operations.browser.describe()['running'] is False",
            "anyio.run(model.aclose)",
            "anyio.run(app.operations.close)",
        ]
    )
    assert _heavy_after(code, env) == []


def test_the_model_and_the_browser_still_load_their_packages_when_used() -> None:
    # The other side: the lazy imports do happen (here without a network call).
    code = "\n".join(
        [
            "from agentd.llm import AnthropicModel, LLMSettings",
            "model = AnthropicModel(LLMSettings(api_key='sk-test', base_url='http://127.0.0.1:9'))",
            "model._connect()",
            "from agentd.browser import playwright_browser",
            "playwright_browser._load_playwright()",
            "assert playwright_browser.PlaywrightError is not None",
        ]
    )
    assert _heavy_after(code) == ["anthropic", "playwright"]
