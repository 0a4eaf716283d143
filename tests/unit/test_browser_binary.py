"""Which Chromium the agents run: the headless shell by default, full Chromium on request."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentd.config import load_settings
from agentd.errors import ConfigInvalid
from agentd.ops_config import DEFAULT_CHROMIUM, FULL_CHROMIUM, BrowserSettings


def test_the_default_is_debians_headless_shell() -> None:
    assert BrowserSettings().executable_path == Path("/usr/lib/chromium/chromium-headless-shell")
    assert DEFAULT_CHROMIUM != FULL_CHROMIUM


def test_full_chromium_stays_selectable_with_or_without_a_window(tmp_path: Path) -> None:
    cfg = tmp_path / "agentd.toml"
    cfg.write_text(f'[browser]\nexecutable_path = "{FULL_CHROMIUM}"\nheadless = false\n')
    browser = load_settings(cfg).browser
    assert (browser.executable_path, browser.headless) == (FULL_CHROMIUM, False)


def test_a_window_from_the_headless_shell_is_refused_naming_the_fix(tmp_path: Path) -> None:
    cfg = tmp_path / "agentd.toml"
    cfg.write_text("[browser]\nheadless = false\n")
    with pytest.raises(ConfigInvalid) as info:
        load_settings(cfg)
    assert "headless = false needs full Chromium" in info.value.message
    assert str(FULL_CHROMIUM) in info.value.message
