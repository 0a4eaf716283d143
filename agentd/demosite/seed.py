"""Seed data: a small shop's catalogue and a dozen CRM accounts."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

from agentd.demosite.state import Meeting, Product, SiteState

PRODUCTS: tuple[Product, ...] = (
    Product(
        101,
        "Ceramic Pour-Over Coffee Dripper",
        "Ceramic Pour-Over Dripper | Brightside Goods",
        "Hand-glazed ceramic dripper for a clean, bright cup. Fits most mugs and carafes.",
        Decimal("24.00"),
    ),
    Product(
        102,
        "Burr Coffee Grinder, 40 Settings",
        "Burr Coffee Grinder with 40 Grind Settings",
        "Conical steel burrs and 40 settings from espresso to cold brew.",
        Decimal("129.00"),
    ),
    Product(
        103,
        "Gooseneck Kettle 1L",
        "",
        "",
        Decimal("59.50"),
    ),
    Product(
        104,
        "Linen Tea Towels (Set of 3)",
        "Linen Tea Towels, Set of 3 | Brightside Goods",
        "Stonewashed European linen towels that dry fast and soften with every wash.",
        Decimal("32.00"),
    ),
    Product(
        105,
        "Cast Iron Skillet 26 cm",
        "Pre-Seasoned Cast Iron Skillet 26 cm",
        "Pre-seasoned cast iron for searing, baking and everything in between.",
        Decimal("45.00"),
    ),
    Product(
        106,
        "Beeswax Food Wraps",
        "",
        "Reusable beeswax wraps.",
        Decimal("18.90"),
    ),
)

# (id, name, stage): ids are the simple slugs the daemon's demo data uses.
ACCOUNTS: tuple[tuple[str, str, str], ...] = (
    ("acme", "Acme Corporation", "evaluation"),
    ("globex", "Globex Corporation", "discovery"),
    ("initech", "Initech", "qualification"),
    ("umbrella", "Umbrella Retail", "prospect"),
    ("hooli", "Hooli", "negotiation"),
    ("stark", "Stark Industries", "discovery"),
    ("wayne", "Wayne Enterprises", "qualification"),
    ("wonka", "Wonka Confectionery", "discovery"),
    ("soylent", "Soylent Foods", "prospect"),
    ("tyrell", "Tyrell Home", "evaluation"),
    ("cyberdyne", "Cyberdyne Systems", "closed_won"),
    ("vandelay", "Vandelay Industries", "discovery"),
)


# (account, name, email, role): people on the accounts besides the buying team.
CONTACTS: tuple[tuple[str, str, str, str], ...] = (
    ("vandelay", "Art Vandelay", "art@vandelay.example", "CEO"),
    ("vandelay", "Kel Varnsen", "kel@vandelay.example", "Buyer"),
)
# A past meeting with recorded minutes, the kind a person shares with the customer.
MINUTES = (
    "vandelay",
    "Import logistics workshop",
    "Agreed: a two-warehouse pilot from next month; Vandelay sends volumes by Friday.",
)


def seed(state: SiteState) -> None:
    """Fill an empty state with the catalogue, the accounts, contacts and a recorded meeting."""
    for product in PRODUCTS:
        state.add_product(product)
    for account_id, name, stage in ACCOUNTS:
        state.add_account(account_id, name, stage=stage)
    for account_id, name, email, role in CONTACTS:
        state.add_contact(account_id, name, email, role)
    account_id, title, minutes = MINUTES
    held = datetime.now(UTC) - timedelta(days=2)
    with state.lock:  # held in the past: not something the scheduling form would take
        state.meetings.append(
            Meeting(
                state._new_id(),
                account_id,
                title,
                held.date(),
                time(10, 0),
                60,
                False,
                held,
                minutes=minutes,
            )
        )
