"""``manage.py thumbsvc_placeholders app.Model image_field thumbhash_field``: backfill stored ThumbHashes.

Each row whose hash field is empty (every row with ``--all``) has its image read through its
storage, hashed with ``thumbsvc.placeholders.compute`` and the hash saved; ``--average-field``
stores the average colour too. One line per row is printed; unreadable images are reported
and skipped, and make the command fail at the end.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q

from thumbsvc.errors import ThumbError
from thumbsvc.placeholders import compute


class Command(BaseCommand):
    help = "Compute and store the ThumbHash (and average colour) of each row's image."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("model", help="the model, as app_label.ModelName")
        parser.add_argument("image_field", help="the file or image field to read")
        parser.add_argument("thumbhash_field", help="the text field that stores the ThumbHash (base64)")
        parser.add_argument("--average-field", help="a text field that stores the average colour (#rrggbb)")
        parser.add_argument("--all", action="store_true", help="recompute rows that already have a hash")
        parser.add_argument("--dry-run", action="store_true", help="print the hashes, save nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            model = apps.get_model(options["model"])
        except (LookupError, ValueError) as exc:
            raise CommandError(f"no model {options['model']!r}: {exc}") from exc
        image_field, hash_field, average_field = (
            options["image_field"],
            options["thumbhash_field"],
            options["average_field"],
        )
        for name in filter(None, (image_field, hash_field, average_field)):
            try:
                model._meta.get_field(name)
            except FieldDoesNotExist as exc:
                raise CommandError(str(exc)) from exc
        rows = model._default_manager.exclude(Q(**{image_field: ""}) | Q(**{f"{image_field}__isnull": True}))
        if not options["all"]:
            rows = rows.filter(Q(**{hash_field: ""}) | Q(**{f"{hash_field}__isnull": True}))
        fields = [hash_field] + ([average_field] if average_field else [])
        failures = 0
        for row in rows.order_by("pk").iterator():
            file = getattr(row, image_field)
            try:
                with file.open("rb"):
                    found = compute(file)
            except (ThumbError, OSError) as exc:
                self.stderr.write(f"{row.pk}\t{file.name}: {exc or type(exc).__name__}")
                failures += 1
                continue
            setattr(row, hash_field, found.thumbhash)
            if average_field:
                setattr(row, average_field, found.average)
            if not options["dry_run"]:
                row.save(update_fields=fields)
            self.stdout.write(f"{row.pk}\t{file.name}\t{found.thumbhash}\t{found.average}")
        if failures:
            raise CommandError(f"{failures} image(s) could not be read or decoded")
