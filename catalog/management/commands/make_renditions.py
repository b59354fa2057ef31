"""python manage.py make_renditions [--limit N]

Makes the model-ready JPEG and the thumbnail for stored images that have none
(images stored before renditions existed, or after ANNOTATOR_IMAGE_MAX_SIDE
changed). Until then those images still work: the annotator prepares them from
the stored copy and lists show the full copy. Safe to re-run and to interrupt."""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django.db.models import Q

from catalog.models import ProductImage
from catalog.renditions import renditions_store

BATCH = 200


class Command(BaseCommand):
    help = "Make missing model-ready and thumbnail renditions of stored images."

    def add_arguments(self, parser):
        parser.add_argument("--limit", type=int, default=0, help="Stop after N images.")

    def handle(self, *args, limit: int, **options):
        todo = ProductImage.objects.filter(status=ProductImage.Status.READY).exclude(file="")
        todo = todo.filter(Q(model_file="") | Q(thumb_file="")).order_by("pk")
        done = failed = 0
        last = 0
        while not limit or done + failed < limit:
            batch = list(todo.filter(pk__gt=last)[:BATCH])
            if not batch:
                break
            for image in batch:
                last = image.pk
                try:
                    with image.file.open("rb") as stream:
                        stored = stream.read()
                    image.model_file, image.thumb_file = renditions_store(
                        sha256=image.sha256, stored_jpeg=stored
                    )
                except (OSError, ValueError) as exc:
                    failed += 1
                    self.stderr.write(f"image {image.pk}: {exc}")
                    continue
                image.save(update_fields=["model_file", "thumb_file", "updated_at"])
                done += 1
                if limit and done + failed >= limit:
                    break
        self.stdout.write(f"Renditions made for {done} images; {failed} could not be read.")
