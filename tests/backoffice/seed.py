"""Create the test store's database: Oscar's migrations, a small catalogue, a staff user.

Run with the store's own Python (``.venv-oscar/bin/python seed.py``), with
``OSCAR_SITE_DB`` naming the SQLite file to create and
``OSCAR_SITE_STAFF_PASSWORD`` the staff user's password. Prints what it made
as one JSON object (ids the tests refer to). Everything is created through
Oscar's own models and test factories, as a shop owner's data would be.
"""

import json
import os
import sys
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "oscar_site.settings")

import django

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.flatpages.models import FlatPage  # noqa: E402
from django.contrib.sites.models import Site  # noqa: E402
from django.core.management import call_command  # noqa: E402
from oscar.apps.catalogue.categories import create_from_breadcrumbs  # noqa: E402
from oscar.apps.catalogue.models import ProductCategory  # noqa: E402
from oscar.test.factories import create_order, create_product  # noqa: E402

STAFF_USERNAME = "store-admin"
STAFF_EMAIL = "admin@brightside.test"
CUSTOMER_EMAIL = "jo@customer.test"

PRODUCTS = [
    (
        "BSG-KETTLE-1L",
        "Gooseneck Kettle 1 L",
        "49.00",
        "Gooseneck Kettle | Brightside",
        "A stainless gooseneck kettle for pour-over.",
    ),
    (
        "BSG-GRINDER",
        "Burr Grinder",
        "129.00",
        "Burr Grinder | Brightside",
        "Conical burrs, 40 settings.",
    ),
    ("BSG-DRIPPER", "Ceramic Dripper", "24.00", "Ceramic Dripper | Brightside", "Size 02."),
    ("BSG-FILTERS", "Paper Filters (100)", "6.50", "", ""),
]


def main() -> None:
    call_command("migrate", verbosity=0, interactive=False)
    site = Site.objects.get(pk=1)
    site.domain, site.name = "127.0.0.1", "Brightside Goods"
    site.save()
    users = get_user_model()
    staff = users.objects.create_superuser(
        STAFF_USERNAME, STAFF_EMAIL, os.environ["OSCAR_SITE_STAFF_PASSWORD"]
    )
    customer = users.objects.create_user("jo", CUSTOMER_EMAIL, None, first_name="Jo")
    category = create_from_breadcrumbs("Coffee > Brewing")
    products = {}
    for upc, title, price, meta_title, meta_description in PRODUCTS:
        product = create_product(
            upc=upc,
            title=title,
            product_class="Coffee gear",
            partner_name="Brightside Warehouse",
            partner_sku=upc,
            price=Decimal(price),
            num_in_stock=20,
            meta_title=meta_title,
            meta_description=meta_description,
        )
        ProductCategory.objects.create(product=product, category=category)
        products[upc] = product.pk
    page = FlatPage.objects.create(
        url="/shipping/",
        title="Shipping",
        content="<p>We ship within two working days.</p>",
    )
    page.sites.add(site)
    order = create_order(number="100001", user=customer)
    print(
        json.dumps(
            {
                "staff_username": staff.username,
                "staff_email": staff.email,
                "customer_id": customer.pk,
                "products": products,
                "page_id": page.pk,
                "order_number": order.number,
                "order_id": order.pk,
            }
        )
    )


if __name__ == "__main__":
    main()
