"""The systemd unit points at things an install has."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "agentd.service"
PREFIX = "/opt/agentd"  # where the operator guide installs this checkout


def test_documentation_points_at_files_the_install_puts_in_place() -> None:
    lines = [line for line in UNIT.read_text().splitlines() if line.startswith("Documentation=")]
    urls = [url for line in lines for url in line.removeprefix("Documentation=").split()]
    assert urls, "the unit names no documentation"
    for url in urls:
        parsed = urlparse(url)
        assert parsed.scheme == "file", url
        assert parsed.path.startswith(PREFIX + "/"), f"{url} is outside the installed checkout"
        installed = ROOT / parsed.path.removeprefix(PREFIX + "/")
        assert installed.is_file(), f"{url}: {installed.relative_to(ROOT)} is not in the checkout"
    guide = (ROOT / "docs" / "operator-guide.md").read_text()
    assert f'sudo git clone "$AGENTD_REPO" {PREFIX}' in guide  # the install the unit assumes
