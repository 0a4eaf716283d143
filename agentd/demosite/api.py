"""Read-only JSON views of products and accounts (session-protected), for snapshots."""

from __future__ import annotations

from typing import Any

from agentd.demosite.state import Product, SiteState
from agentd.demosite.web import Request, Response, Router, json_response


def product_json(product: Product) -> dict[str, Any]:
    """Return the JSON form of a product."""
    return {
        "id": product.id,
        "title": product.title,
        "seo_title": product.seo_title,
        "meta_description": product.meta_description,
        "price": str(product.price),
    }


def account_json(state: SiteState, account_id: str) -> dict[str, Any]:
    """Return the JSON form of an account with its activity.

    :raises NotFound: no such account.
    """
    account = state.account(account_id)
    notes = state.notes_for(account_id)
    meetings = state.meetings_for(account_id)
    messages = state.messages_for(account_id)
    return {
        "id": account.id,
        "name": account.name,
        "stage": account.stage,
        "contact_email": account.contact_email,
        "counts": {"notes": len(notes), "meetings": len(meetings), "messages": len(messages)},
        "notes": [
            {"id": n.id, "text": n.text, "created_at": n.created_at.isoformat()} for n in notes
        ],
        "meetings": [
            {
                "id": m.id,
                "title": m.title,
                "date": m.date.isoformat(),
                "time": m.time.strftime("%H:%M"),
                "duration_min": m.duration_min,
                "send_invite": m.send_invite,
            }
            for m in meetings
        ],
        "messages": [
            {"id": m.id, "to": m.to, "subject": m.subject, "sent_at": m.sent_at.isoformat()}
            for m in messages
        ],
    }


def product(req: Request) -> Response:
    return json_response(product_json(req.app.state.product(int(req.args[0]))))


def account(req: Request) -> Response:
    return json_response(account_json(req.app.state, req.args[0]))


def register(router: Router) -> None:
    """Add the JSON routes."""
    router.add("GET", r"/api/products/(\d{1,9})", product)
    router.add("GET", r"/api/accounts/([a-z0-9][a-z0-9_-]{0,62})", account)
