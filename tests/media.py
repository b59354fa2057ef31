"""Media storage for tests: the filesystem (the embedded default) or an S3 bucket on a
local server that speaks the real S3 protocol (moto's server mode), the storage boundary
faked at the wire as the AI provider is. Tests that store image bytes take the
`media_storage` fixture (tests/conftest.py) and run once on each; they read what was
stored through Django's storage API, as the code does, never by a local path."""

from __future__ import annotations

import uuid

import boto3
from django.core.files.storage import default_storage
from moto.server import ThreadedMotoServer

from config.settings import s3_media_storage

REGION = "us-east-1"
ACCESS_KEY = ("test-key-id", "test-secret-key")


def s3_server_start() -> tuple[ThreadedMotoServer, str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


def s3_bucket_create(endpoint: str, settings, monkeypatch) -> str:
    """A fresh bucket, and Django's default storage pointed at it (credentials from
    the environment, as in production)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY[0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", ACCESS_KEY[1])
    bucket = f"loupe-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint, region_name=REGION).create_bucket(Bucket=bucket)
    settings.MEDIA_STORAGE = "s3"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": s3_media_storage(
            bucket=bucket, endpoint_url=endpoint, region=REGION, url_expire=60
        ),
    }
    return bucket


def stored_names(folder: str = "") -> list[str]:
    """Every file name in the default storage, recursively, sorted."""
    try:
        folders, files = default_storage.listdir(folder)
    except FileNotFoundError:  # nothing stored yet on the filesystem
        return []
    names = [f"{folder}/{name}" if folder else name for name in files]
    for sub in folders:
        names += stored_names(f"{folder}/{sub}" if folder else sub)
    return sorted(names)


def stored_bytes(name: str) -> bytes:
    with default_storage.open(name, "rb") as stream:
        return stream.read()
