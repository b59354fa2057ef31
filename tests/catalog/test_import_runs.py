"""Browser imports run by a real worker always end `done` or `failed` with their reason,
with true counts, whatever the file (the time limits: tests/test_time_limits.py)."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from catalog import tasks
from catalog.importers import import_run_create
from catalog.models import ImportRun, Product
from tests.waiting import wait_for


def _upload(client, name: str, body: bytes) -> ImportRun:
    response = client.post(reverse("import_list"), {"file": SimpleUploadedFile(name, body)})
    assert response.status_code == 302
    run = ImportRun.objects.get(filename=name)
    assert wait_for(lambda: ImportRun.objects.get(pk=run.pk).is_finished)
    run.refresh_from_db()
    return run


def test_a_refused_upload_ends_failed_with_its_reason_and_a_bad_row_does_not(
    client, manager, celery_worker
):
    client.force_login(manager)
    latin1 = b"sku,title\nL1,Shirt\nL2,Chemise \xe9t\xe9\nL3,Hat\n"
    offset = latin1.index(b"\xe9")

    refused = _upload(client, "latin1.csv", latin1)
    mixed = _upload(client, "mixed.csv", b"sku,title\nN1,Red\x00Dress\nN2,Blue\nN2,Blue again\n")

    assert refused.status == ImportRun.Status.FAILED
    assert refused.message == (
        "the file is not UTF-8 text: line 3 holds the byte 0xE9 at byte offset "
        f"{offset}, which is not UTF-8; save it as UTF-8 CSV or JSON Lines "
        "and import it again. Nothing was imported."
    )
    assert (refused.rows_total, refused.finished_at is not None) == (0, True)
    page = client.get(reverse("import_detail", args=[refused.pk])).content.decode()
    assert "line 3 holds the byte 0xE9" in page and "every 1s" not in page

    assert mixed.status == ImportRun.Status.DONE
    counts = (mixed.rows_total, mixed.rows_created, mixed.rows_duplicate, mixed.rows_failed)
    assert counts == (3, 1, 1, 1)
    assert list(Product.objects.values_list("sku", "title")) == [("N2", "Blue again")]
    assert [(e["line"], e["sku"]) for e in mixed.errors] == [(2, "N1"), (4, "N2")]


def test_an_upload_whose_file_is_lost_ends_failed_with_the_reason(celery_worker):
    # given an upload whose stored file disappeared before a worker took it
    run = import_run_create(upload=SimpleUploadedFile("gone.csv", b"sku\nG1\n"), user=None)
    run.upload.storage.delete(run.upload.name)

    tasks.import_run_execute.delay(run.pk)

    assert wait_for(lambda: ImportRun.objects.get(pk=run.pk).is_finished)
    run.refresh_from_db()
    assert run.status == ImportRun.Status.FAILED
    assert run.message.startswith("the import stopped on an unexpected error: FileNotFoundError")
    assert run.finished_at is not None
    assert Product.objects.count() == 0
