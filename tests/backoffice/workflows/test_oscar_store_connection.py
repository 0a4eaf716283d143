"""Store workflows of the store-connection agent: connect, verify, disconnect.

What an integration needs on this back-office is a dashboard user of its own
with the narrowest role Oscar offers: a partner's "limited" user (dashboard
access to that partner's products, not staff). Its password is generated and
put in the vault before the user is created; it is typed only into password
fields. The three tests run in this order on the module's store.
"""

from __future__ import annotations

import secrets

import pytest
from store_steps import sign_in

from agentd.workflow_steps import WorkflowRun, step
from tests.backoffice.store import Store

pytestmark = pytest.mark.slow(15)

EMAIL = "agentd-integration@brightside.test"
PASSWORD = secrets.token_urlsafe(16)


def partner_id(store: Store) -> str:
    return str(
        store.query("SELECT id FROM partner_partner WHERE name = 'Brightside Warehouse'")[0][0]
    )


@pytest.mark.browser
def test_oscar_connect_store(run: WorkflowRun, store: Store) -> None:
    """Create the integration user {integration_email} (limited role) for partner {partner_id}."""
    run.secrets["integration_password"] = PASSWORD
    run.bind(partner_id=partner_id(store), integration_email=EMAIL)

    sign_in(run)
    step(
        run,
        intent="Open the partner's new-user form",
        action="goto",
        target="/dashboard/partners/{partner_id}/users/add/",
    )
    step(run, intent="First name", action="fill", target="#id_first_name", value="agentd")
    step(run, intent="Last name", action="fill", target="#id_last_name", value="integration")
    step(run, intent="Email", action="fill", target="#id_email", value="{integration_email}")
    step(
        run,
        intent="Password (from the vault)",
        action="fill",
        target="#id_password1",
        value="{secret:integration_password}",
    )
    step(
        run,
        intent="Password again",
        action="fill",
        target="#id_password2",
        value="{secret:integration_password}",
    )
    step(
        run,
        intent="The narrowest role: limited to this partner",
        action="check",
        target='input[name="role"][value="limited"]',
    )
    step(
        run,
        intent="Create the user",
        action="click",
        target='#user_partner_form button[type="submit"]',
    )
    step(
        run,
        intent="Confirm it was created",
        action="expect_text",
        target=".alert-success",
        expect="was created successfully",
    )

    rows = store.query(
        "SELECT u.is_staff, u.is_superuser, u.is_active, "
        "(SELECT group_concat(p.codename) FROM auth_user_user_permissions up "
        " JOIN auth_permission p ON p.id = up.permission_id WHERE up.user_id = u.id) AS perms "
        "FROM auth_user u WHERE u.email = ?",
        (EMAIL,),
    )
    assert [tuple(r) for r in rows] == [(0, 0, 1, "dashboard_access")]


@pytest.mark.browser
def test_oscar_verify_connection(run: WorkflowRun, store: Store) -> None:
    """Sign in as the integration's user and count the products it can see."""
    run.secrets.update(integration_user=EMAIL, integration_password=PASSWORD)

    step(run, intent="Open the dashboard sign-in", action="goto", target="/dashboard/login/")
    step(
        run,
        intent="Enter the integration's username",
        action="fill",
        target="#id_username",
        value="{secret:integration_user}",
    )
    step(
        run,
        intent="Enter the integration's password",
        action="fill",
        target="#id_password",
        value="{secret:integration_password}",
    )
    step(run, intent="Sign in", action="click", target='#dashboard_login_form input[type="submit"]')
    step(run, intent="Arrive on the dashboard", action="expect_url", target="/dashboard/")
    step(run, intent="Open the product list", action="goto", target="/dashboard/catalogue/")
    step(
        run,
        intent="Read how many products it sees",
        action="extract",
        target=".page-records-count",
        result="product_count",
    )

    # It sees its partner's products only (the store has one more, of another partner).
    mine = store.query(
        "SELECT count(DISTINCT product_id) FROM partner_stockrecord WHERE partner_id = ?",
        (partner_id(store),),
    )[0][0]
    assert store.query("SELECT count(*) FROM catalogue_product")[0][0] > mine
    assert run.results == {"product_count": str(mine)}


@pytest.mark.browser
def test_oscar_disconnect_store(run: WorkflowRun, store: Store) -> None:
    """Unlink the integration user {user_id} from partner {partner_id}, deactivate it."""
    # The user is named by its id: a parameter in a selector may hold only letters,
    # digits, '_' and '-' (an e-mail address may not), and the id is what the
    # dashboard's own forms and checkboxes carry.
    (user,) = store.query("SELECT id FROM auth_user WHERE email = ?", (EMAIL,))
    run.bind(partner_id=partner_id(store), user_id=str(user[0]))

    sign_in(run)
    step(run, intent="Open the partner", action="goto", target="/dashboard/partners/{partner_id}/")
    step(
        run,
        intent="Unlink the integration's user",
        action="click",
        target='form[action$="/users/{user_id}/unlink/"] button',
    )
    step(
        run,
        intent="Confirm it was unlinked",
        action="expect_text",
        target=".alert-success",
        expect="unlinked",
    )
    step(
        run,
        intent="Find the user",
        action="goto",
        target="/dashboard/users/",
    )
    step(
        run,
        intent="Tick the user",
        action="check",
        target='input.selected_user[value="{user_id}"]',
    )
    step(run, intent="Choose to deactivate", action="check", target="#make_inactive_check")
    step(run, intent="Apply", action="click", target='#user_list_form input[type="submit"]')
    step(
        run,
        intent="Confirm the change",
        action="expect_text",
        target=".alert",
        expect="status successfully changed",
    )

    rows = store.query(
        "SELECT u.is_active, (SELECT count(*) FROM auth_user_user_permissions up "
        "WHERE up.user_id = u.id) AS perms FROM auth_user u WHERE u.email = ?",
        (EMAIL,),
    )
    assert [tuple(r) for r in rows] == [(0, 0)]
    # Signing in with it no longer works.
    page = run.page
    page.goto(f"{store.url}/dashboard/login/")
    page.fill("#id_username", EMAIL)
    page.fill("#id_password", PASSWORD)
    page.click('#dashboard_login_form input[type="submit"]')
    assert "/dashboard/login/" in page.url
