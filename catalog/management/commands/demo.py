"""python manage.py demo [--count N] [--no-users] [--no-catalog]

Sets up a fresh machine to try Loupe: one login per role, and a synthetic
catalogue whose images the project draws itself. Safe to run again: users are
only created when missing and products are upserted by SKU.

DEMO_PASSWORD (environment) chooses the demo users' password and is set again
on every run (it must pass AUTH_PASSWORD_VALIDATORS); without it, new users get a
random password printed once.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.demo import demo_users_ensure
from catalog.demo import demo_products, draw_product_image
from catalog.importers import import_file
from catalog.models import ImportRun

SHOWN_ERRORS = 20


class Command(BaseCommand):
    help = "Create demo users (one per role) and a drawn demo catalogue."

    def add_arguments(self, parser):
        parser.add_argument("--count", type=int, default=72, help="Products to create (72).")
        parser.add_argument("--no-users", action="store_true", help="Skip the demo users.")
        parser.add_argument("--no-catalog", action="store_true", help="Skip the catalogue.")

    def handle(self, *args, count: int, no_users: bool, no_catalog: bool, **options):
        if count < 1:
            raise CommandError("--count must be at least 1")
        if not no_users:
            self._users()
        if not no_catalog:
            self._catalogue(count)

    def _users(self) -> None:
        chosen = os.environ.get("DEMO_PASSWORD") or None
        if chosen is not None:
            # The demo includes a superuser: its password passes the same validators as any.
            try:
                validate_password(chosen)
            except ValidationError as exc:
                raise CommandError(
                    "DEMO_PASSWORD is refused: " + " ".join(exc.messages) + " Nothing was changed."
                ) from None
        logins, generated = demo_users_ensure(password=chosen)
        if chosen is None and generated is None:
            self.stdout.write(
                "Demo users already exist; their password was printed when they were created "
                "(set DEMO_PASSWORD to choose one)"
            )
            return
        # A chosen password is the operator's own secret: do not echo it into logs.
        shown = generated if generated is not None else "the value of DEMO_PASSWORD"
        self.stdout.write(f"Demo logins (password: {shown})")
        for username, role in logins:
            self.stdout.write(f"  {username:<12} {role}")

    def _catalogue(self, count: int) -> None:
        products = demo_products(count=count)
        # A fixed folder (not a temporary one): re-running the demo then finds
        # the same image paths and keeps the image rows instead of replacing them.
        folder = Path(settings.MEDIA_ROOT) / "demo-source"
        folder.mkdir(parents=True, exist_ok=True)
        csv_path = folder / "demo-products.csv"
        with csv_path.open("w", encoding="utf-8", newline="") as stream:
            writer = csv.writer(stream)
            writer.writerow(["sku", "title", "description", "brand", "image_path"])
            for product in products:
                image_name = f"{product.sku}.jpg"
                (folder / image_name).write_bytes(draw_product_image(product))
                writer.writerow(
                    [product.sku, product.title, product.description, product.brand, image_name]
                )
        # Inline: the demo reads its own local files and needs no running worker.
        run = import_file(path=csv_path, images_dir=folder, source="demo", queue_images=False)
        if run.status == ImportRun.Status.FAILED:
            raise CommandError(f"demo import failed: {run.message}")
        self.stdout.write(
            f"Demo catalogue: {len(products)} products ({run.rows_created} new, "
            f"{run.rows_updated} updated), {run.images_ready} images stored"
        )
        if run.rows_failed or run.images_failed:
            for error in run.errors[:SHOWN_ERRORS]:
                self.stderr.write(f"{error.get('sku') or '-'}: {error.get('reason')}")
            raise CommandError(
                f"{run.rows_failed} rows and {run.images_failed} images failed "
                f"(see import #{run.pk})"
            )
