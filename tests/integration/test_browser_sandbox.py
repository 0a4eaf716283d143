"""Chromium's own sandbox: off as root (Chromium cannot sandbox itself there), on for
any other user, and working under the systemd unit's restrictions.

The unprivileged case runs the daemon's real launch code as ``nobody`` in a
child process under a seccomp filter built from the unit's own
``SystemCallFilter=``, ``SystemCallErrorNumber=`` and ``RestrictNamespaces=``
lines (expanded by ``systemd-analyze``, loaded with libseccomp the way systemd
loads them), and reads Chromium's own verdict from ``chrome://sandbox``. The
headless shell (the default binary) has no ``chrome://`` pages: for it the
tests read what the sandbox does from ``/proc``, a page's renderer in a PID
namespace of its own.
"""

from __future__ import annotations

import ctypes.util
import inspect
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from agentd.browser.playwright_browser import PlaywrightBrowser
from agentd.errors import ExternalError
from agentd.ops_config import FULL_CHROMIUM, BrowserSettings
from tests.integration import test_browser_agent as base

pytestmark = base.BROWSER_MARKS
anyio_backend = base.anyio_backend

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "agentd.service"
ADEQUATE = "You are adequately sandboxed."
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="the daemon does not run as root here")


def renderer_depths() -> list[int]:
    """Return the PID-namespace depth of every Chromium renderer this process started.

    2 or more in the sandbox (a namespace of its own), 1 without it.
    """
    from pathlib import Path

    def status(pid: str) -> dict[str, str]:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        return dict(line.split(":", 1) for line in lines if ":" in line)

    me, depths = str(os.getpid()), []
    for entry in Path("/proc").iterdir():
        try:
            if not entry.name.isdigit():
                continue
            if b"--type=renderer" not in (entry / "cmdline").read_bytes():
                continue
            found, pid = status(entry.name), entry.name
            for _ in range(8):  # renderer, zygotes, browser, driver: up to this process
                pid = status(pid)["PPid"].strip()
                if pid in (me, "0"):
                    break
            if pid == me:
                depths.append(len(found["NSpid"].split()))
        except (OSError, KeyError):
            continue  # gone meanwhile, or not ours to read
    return depths


async def renderer_namespaces(browser: PlaywrightBrowser) -> list[int]:
    """Launch Chromium as the daemon does, open a page; return its renderers' depths."""
    chromium = await browser._ensure()
    page = await chromium.new_page()
    try:
        await page.goto("data:text/html,<p>renderer</p>")
        return renderer_depths()
    finally:
        await page.close()


async def sandbox_page(browser: PlaywrightBrowser) -> str:
    """Launch Chromium as the daemon does and return what chrome://sandbox says."""
    chromium = await browser._ensure()
    page = await chromium.new_page()
    try:
        await page.goto("chrome://sandbox")
        await page.wait_for_function("document.body.innerText.includes('sandboxed')")
        return await page.inner_text("body")
    finally:
        await page.close()


@as_root
async def test_as_root_the_headless_shell_runs_without_its_sandbox() -> None:
    browser = PlaywrightBrowser(BrowserSettings())
    try:
        assert browser.describe()["sandbox"] is False
        depths = await renderer_namespaces(browser)
        assert depths and set(depths) == {1}, depths
    finally:
        await browser.close()


@as_root
async def test_as_root_chromium_runs_without_its_sandbox() -> None:
    browser = PlaywrightBrowser(BrowserSettings(executable_path=FULL_CHROMIUM))
    try:
        assert browser.describe()["sandbox"] is False
        text = await sandbox_page(browser)
        assert "NOT adequately sandboxed" in text
        described = browser.describe()
        assert described["running"] is True and described["sandbox"] is False
        assert "root" in described["sandbox_reason"]
    finally:
        await browser.close()


@as_root
async def test_as_root_a_required_sandbox_is_a_clear_error(tmp_path: Path) -> None:
    browser = PlaywrightBrowser(BrowserSettings(sandbox=True))
    try:
        assert browser.describe()["sandbox"] is None
        with pytest.raises(ExternalError, match="sandbox = true, but the daemon runs as root"):
            await browser.new_session(["127.0.0.1"], tmp_path, base_url="http://127.0.0.1")
        assert browser.describe()["running"] is False
    finally:
        await browser.close()


# -- unprivileged, under the unit's restrictions -------------------------------------------

CHILD = (
    r"""
import asyncio, ctypes, json, os, sys

spec = json.loads(os.environ["UNIT_FILTER"])
lib = ctypes.CDLL(spec["libseccomp"])
lib.seccomp_init.restype = ctypes.c_void_p
lib.seccomp_init.argtypes = [ctypes.c_uint32]
lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]


class Cmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("a", ctypes.c_uint64), ("b", ctypes.c_uint64)]


lib.seccomp_rule_add_array.argtypes = [
    ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(Cmp)]
lib.seccomp_load.argtypes = [ctypes.c_void_p]
ALLOW, KILL = 0x7FFF0000, 0x80000000
def errno(n): return 0x00050000 | n
def nr(name): return lib.seccomp_syscall_resolve_name(name.encode())

# SystemCallFilter= (an allow list) and SystemCallErrorNumber=.
refuse = errno(spec["errno"]) if spec["errno"] else KILL
calls = lib.seccomp_init(refuse)
for name in spec["allowed"]:
    if nr(name) >= 0:
        assert lib.seccomp_rule_add_array(calls, ALLOW, nr(name), 0, None) == 0
# RestrictNamespaces=: a namespace flag not allowed fails with EPERM; clone3 with ENOSYS
# (its flags are out of a filter's reach), as systemd does it.
spaces = lib.seccomp_init(ALLOW)
for flag in spec["forbidden_flags"]:
    for name, arg in (("unshare", 0), ("clone", 0), ("setns", 1)):
        cmp = Cmp(arg, 7, flag, flag)  # SCMP_CMP_MASKED_EQ
        assert lib.seccomp_rule_add_array(spaces, errno(1), nr(name), 1, ctypes.byref(cmp)) == 0
assert lib.seccomp_rule_add_array(spaces, errno(38), nr("clone3"), 0, None) == 0
assert lib.seccomp_load(calls) == 0 and lib.seccomp_load(spaces) == 0

libc = ctypes.CDLL(None, use_errno=True)
probes = {
    "mount namespace": libc.unshare(0x00020000) == -1,  # CLONE_NEWNS: not allowed
    "swapoff": libc.swapoff(b"/nonexistent") == -1 and ctypes.get_errno() == 1,
}

from agentd.browser.playwright_browser import PlaywrightBrowser
from agentd.ops_config import FULL_CHROMIUM, BrowserSettings
"""
    + inspect.getsource(renderer_depths)
    + r"""

async def main():
    # The default binary (the headless shell): its renderers, seen from /proc.
    browser = PlaywrightBrowser(BrowserSettings())
    try:
        chromium = await browser._ensure()
        page = await chromium.new_page()
        await page.goto("data:text/html,<p>renderer</p>")
        depths = renderer_depths()
        shell = browser.describe()
    finally:
        await browser.close()
    # Full Chromium: its own verdict.
    browser = PlaywrightBrowser(BrowserSettings(executable_path=FULL_CHROMIUM))
    try:
        chromium = await browser._ensure()
        page = await chromium.new_page()
        await page.goto("chrome://sandbox")
        await page.wait_for_function("document.body.innerText.includes('sandboxed')")
        text = await page.inner_text("body")
        print(json.dumps({"euid": os.geteuid(), "refused": probes, "depths": depths,
                          "shell": shell, "describe": browser.describe(), "page": text}))
    finally:
        await browser.close()


asyncio.run(main())
"""
)

# Namespace flags by RestrictNamespaces= name.
NAMESPACE_FLAGS = {
    "cgroup": 0x02000000,
    "ipc": 0x08000000,
    "net": 0x40000000,
    "mnt": 0x00020000,
    "pid": 0x20000000,
    "user": 0x10000000,
    "uts": 0x04000000,
}


def unit_values(key: str) -> list[str]:
    """Every value of ``key=`` in the unit, split on spaces, in order."""
    values: list[str] = []
    for line in UNIT.read_text().splitlines():
        if line.startswith(f"{key}="):
            values.extend(line.split("=", 1)[1].split())
    return values


def expand(group: str, seen: set[str]) -> set[str]:
    """The system calls of a systemd group, through its nested groups."""
    out = subprocess.run(
        ["systemd-analyze", "syscall-filter", group], capture_output=True, text=True, check=True
    ).stdout
    calls: set[str] = set()
    for line in out.splitlines()[1:]:
        name = line.strip()
        if not name or name.startswith("#"):
            continue
        if name.startswith("@"):
            if name not in seen:
                seen.add(name)
                calls |= expand(name, seen)
        else:
            calls.add(name)
    return calls


def unit_filter() -> dict[str, object]:
    seen: set[str] = set()
    allowed = expand("@default", seen)  # systemd always allows these
    for item in unit_values("SystemCallFilter"):
        assert not item.startswith("~"), "the unit's filter is an allow list"
        allowed |= expand(item, seen) if item.startswith("@") else {item}
    errnos = {"EPERM": 1}
    errno = unit_values("SystemCallErrorNumber")
    namespaces = unit_values("RestrictNamespaces")
    return {
        "allowed": sorted(allowed),
        "errno": errnos[errno[-1]] if errno else 0,
        "forbidden_flags": [f for n, f in NAMESPACE_FLAGS.items() if n not in namespaces],
    }


def unprivileged_python() -> tuple[str, dict[str, str]] | None:
    """A Python of this version that ``nobody`` can run, with this environment's packages."""
    packages = next(p for p in sys.path if p.endswith("site-packages"))
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{packages}:{REPO}"}
    for candidate in (
        sys.executable,
        f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}",
    ):
        probe = subprocess.run(
            [
                "setpriv",
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                candidate,
                "-c",
                "import sys, pydantic, playwright; print(sys.version_info[:2])",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        if probe.returncode == 0 and probe.stdout.strip() == str(tuple(sys.version_info[:2])):
            return candidate, env
    return None


@as_root
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv not installed")
@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
@pytest.mark.skipif(ctypes.util.find_library("seccomp") is None, reason="libseccomp missing")
def test_unprivileged_under_the_units_filter_chromium_runs_sandboxed() -> None:
    userns = subprocess.run(
        [
            "setpriv",
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "unshare",
            "--user",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if userns.returncode != 0:
        pytest.skip(f"the kernel forbids unprivileged user namespaces: {userns.stderr.strip()}")
    found = unprivileged_python()
    if found is None:
        pytest.skip("no Python of this version with these packages that nobody may run")
    python, env = found
    home = Path(tempfile.mkdtemp(prefix="sbx-", dir="/tmp"))
    try:
        shutil.chown(home, "nobody")
        spec = {**unit_filter(), "libseccomp": ctypes.util.find_library("seccomp")}
        child = subprocess.run(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", python, "-c", CHILD],
            capture_output=True,
            text=True,
            timeout=120,
            env={**env, "HOME": str(home), "UNIT_FILTER": json.dumps(spec)},
        )
    finally:
        shutil.rmtree(home, ignore_errors=True)
    assert child.returncode == 0, child.stderr[-3000:]
    report = json.loads(child.stdout.strip().splitlines()[-1])
    assert report["euid"] != 0
    # The filter was in force (what the unit forbids failed) ...
    assert report["refused"] == {"mount namespace": True, "swapoff": True}
    # ... and Chromium sandboxed itself under it, as the daemon reports.
    assert report["describe"]["sandbox"] is True, report["describe"]
    assert ADEQUATE in report["page"], report["page"]
    # The headless shell too: every renderer in a PID namespace of its own.
    assert report["shell"]["sandbox"] is True, report["shell"]
    assert report["depths"] and min(report["depths"]) >= 2, report["depths"]
    assert "Namespace" in report["page"]
