"""agentd on a real store back-office: django-oscar's dashboard, driven through the daemon.

A real ``agentd serve`` process and ``agentctl``, as an operator runs them;
real Chromium on Oscar's pages as they are; the knowledge base built from the
bundled workflows and the store's (``tests/backoffice/workflows``). An SEO
change auto-executes at L3+ through a custom executor, is checked in Oscar's
own database, and is rolled back.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentd.ops_config import DEFAULT_CHROMIUM
from agentd.supervise import DaemonProcess
from agentd.vault import generate_key_file
from tests.backoffice.store import Store, StoreTemplate
from tests.e2e.test_daemon_process import BIN, REPO

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow(45),
    pytest.mark.skipif(not DEFAULT_CHROMIUM.is_file(), reason="Chromium is not installed"),
]

STORE_WORKFLOWS = REPO / "tests" / "backoffice" / "workflows"
ACCOUNTS = """id,tenant,name,stage,trusted_mode,domains,allowed_hosts
brightside,t1,Brightside Goods,discovery,ACTIVE,SEO;CONTENT,127.0.0.1
"""


@pytest.fixture(scope="module")
def store(
    store_template: StoreTemplate, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Store]:
    with Store(store_template, tmp_path_factory.mktemp("store")) as running:
        yield running


def ctl(*args: str, stdin: str | None = None) -> Any:
    """Run ``agentctl --json ARGS``; return its answer (fail the test on an error)."""
    done = subprocess.run(
        [str(BIN / "agentctl"), "--json", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return json.loads(done.stdout) if done.stdout.strip() else None


def config(tmp: Path, store: Store) -> Path:
    key = tmp / "vault.key"
    generate_key_file(key)
    cfg = tmp / "agentd.toml"
    cfg.write_text(
        '[autonomy]\nlevel = "L3+"\n'
        "[scheduler]\nenabled = false\n"
        f'[vault]\nkey_file = "{key}"\n'
        "[browser]\nstep_timeout_s = 10.0\n"
        f'knowledge_base = "{tmp / "kb.json"}"\n'
        f'workflow_dirs = ["{STORE_WORKFLOWS}"]\n'
        f'[browser.services.store]\nbase_url = "{store.url}"\n'
        "[execution]\npoll_interval_s = 0.2\noperation_timeout_s = 90.0\n"
        '[execution.executors]\n"SEO.meta_update" = "store_seo"\n'
        '[execution.custom_executors.store_seo]\nlike = "product_seo"\nservice = "store"\n'
        "[execution.custom_executors.store_seo.workflows]\n"
        'product_seo_update = "oscar_product_seo_update"\n'
        'read_product_seo = "oscar_read_product_seo"\n'
    )
    return cfg


@pytest.fixture
def daemon(
    daemon_env: dict[str, str],
    short_tmp: Path,
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[DaemonProcess]:
    cfg = config(short_tmp, store)
    monkeypatch.setenv("AGENTD_CONFIG", str(cfg))
    built = subprocess.run(
        [str(BIN / "agentd"), "kb", "build", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert built.returncode == 0, built.stderr
    proc = DaemonProcess({**daemon_env, "AGENTD_CONFIG": str(cfg)}, log_path=short_tmp / "d.log")
    try:
        proc.wait_ready(60)
        ctl("accounts", "import", str(_write(short_tmp / "accounts.csv", ACCOUNTS)))
        ctl("secret", "set", "brightside", "store", "staff_user", stdin=store.secrets["staff_user"])
        ctl("secret", "set", "brightside", "store", "staff_password", stdin=store.password)
        ctl("consent", "grant", "brightside", "store", "--permissions", "write")
        yield proc
    finally:
        proc.stop()
        proc.close()


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def wait_execution(intent_id: str, timeout: float = 150) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for exe in ctl("executions")["executions"]:
            if exe["intent_id"] == intent_id and exe["state"] in ("succeeded", "failed", "refused"):
                shown: dict[str, Any] = ctl("execution", "show", exe["id"])
                return shown
        time.sleep(0.5)
    raise AssertionError(f"no finished execution for {intent_id} in {timeout} s")


def test_an_seo_change_auto_executes_on_the_store_and_is_rolled_back(
    daemon: DaemonProcess, store: Store, short_tmp: Path
) -> None:
    product_id = store.product_id("BSG-KETTLE-1L")
    before = store.product(product_id)
    new_title = "Gooseneck Kettle 1 L for pour-over | Brightside"
    decided = ctl(
        "propose",
        "--tenant",
        "t1",
        "--account",
        "brightside",
        "--action",
        "update_account_context",
        "--domain",
        "SEO",
        "--change-type",
        "meta_update",
        "--diff",
        json.dumps({"product_id": str(product_id), "seo_title": new_title}),
        "--rationale",
        "the title should say what the kettle is for",
    )
    assert decided["decision"] == "AUTO_EXECUTE", decided
    exe = wait_execution(decided["intent_id"])
    assert exe["state"] == "succeeded", exe
    assert (exe["executor"], exe["autonomous"]) == ("store_seo", True)
    assert exe["before"] == {
        "seo_title": before["meta_title"],
        "meta_description": before["meta_description"],
    }
    assert exe["after"] == {"seo_title": new_title, "meta_description": before["meta_description"]}
    assert [op["workflow"] for op in exe["operations"]] == [
        "oscar_read_product_seo",
        "oscar_product_seo_update",
        "oscar_read_product_seo",
    ]
    # Oscar's own database has the change; nothing else of the product moved.
    changed = store.product(product_id)
    assert (changed["meta_title"], changed["meta_description"]) == (
        new_title,
        before["meta_description"],
    )
    assert changed["title"] == before["title"]
    # Every step has its screenshot, and the staff password is in none of the evidence.
    for op in exe["operations"]:
        shown = ctl("op", "show", op["id"])
        assert shown["state"] == "completed"
        assert all(s["screenshot"] for s in shown["steps"] if s["status"] == "ok")
    for path in (short_tmp / "state").rglob("*"):
        if path.is_file():
            assert store.password.encode() not in path.read_bytes(), path

    token = exe["rollback_token"]["token"]
    check = ctl("rollback", "check", token)
    assert (check["available"], check["type"]) == (True, "SOFT_UNDO")
    done = ctl("rollback", token, "--reason", "keep the old title")
    assert (done["state"], done["type"]) == ("rolled_back", "SOFT_UNDO"), done
    restored = store.product(product_id)
    assert (restored["meta_title"], restored["meta_description"]) == (
        before["meta_title"],
        before["meta_description"],
    )
    assert ctl("audit", "verify")["intact"] is True


def run_op(workflow: str, *params: str) -> dict[str, Any]:
    """``agentctl op run`` on the store, then wait for the operation's end."""
    args = [a for p in params for a in ("--param", p)]
    started = ctl("op", "run", workflow, "--account", "brightside", "--service", "store", *args)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        shown: dict[str, Any] = ctl("op", "show", started["id"])
        if shown["state"] in ("completed", "failed", "cancelled"):
            return shown
        time.sleep(0.3)
    raise AssertionError(f"{workflow} did not end in 120 s")


def test_the_store_connection_agent_connects_verifies_and_undoes(
    daemon: DaemonProcess, store: Store, short_tmp: Path
) -> None:
    partner = str(store.query("SELECT id FROM partner_partner")[0][0])
    email = "agentd-integration@brightside.test"
    # The integration's credential is made and sealed in the vault first; the agent
    # only ever types it into password fields.
    password = secrets.token_urlsafe(18)
    ctl("secret", "set", "brightside", "store", "integration_password", stdin=password)
    ctl("secret", "set", "brightside", "store", "integration_user", stdin=email)

    made = run_op("oscar_connect_store", f"partner_id={partner}", f"integration_email={email}")
    assert made["state"] == "completed", made
    user = store.query("SELECT id, is_staff, is_active FROM auth_user WHERE email = ?", (email,))
    assert [tuple(r)[1:] for r in user] == [(0, 1)]  # a limited user, not staff

    verified = run_op("oscar_verify_connection")
    assert verified["state"] == "completed", verified
    mine = store.query(
        "SELECT count(DISTINCT product_id) FROM partner_stockrecord WHERE partner_id = ?",
        (partner,),
    )[0][0]
    assert verified["result"] == {"product_count": str(mine)}

    # The credential is in no screenshot, trace, log or row (the vault holds it sealed).
    for path in [*(short_tmp / "state").rglob("*"), *(short_tmp / "logs").rglob("*")]:
        if path.is_file():
            assert password.encode() not in path.read_bytes(), path
    exported = subprocess.run(
        [str(BIN / "agentctl"), "audit", "export"], capture_output=True, text=True, timeout=60
    )
    assert exported.returncode == 0 and "integration_password" in exported.stdout
    assert password not in exported.stdout

    user_id = str(user[0][0])
    undone = run_op("oscar_disconnect_store", f"partner_id={partner}", f"user_id={user_id}")
    assert undone["state"] == "completed", undone
    after = store.query(
        "SELECT u.is_active, (SELECT count(*) FROM partner_partner_users pu "
        "WHERE pu.user_id = u.id) AS partners FROM auth_user u WHERE u.email = ?",
        (email,),
    )
    assert [tuple(r) for r in after] == [(0, 0)]
    failed = run_op("oscar_verify_connection")
    assert failed["state"] == "failed"  # the credential no longer signs in
