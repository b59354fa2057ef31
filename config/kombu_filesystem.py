"""kombu's filesystem transport (the embedded default's broker) with atomic writes.

kombu writes a message straight under its final name (open, lock, write), and a
consumer in another process may move it away and read it before the bytes are
there: the worker then stops on an empty message ("Unrecoverable error:
JSONDecodeError", seen under `make run` when beat and the web publish while the
worker consumes). Here a message is written under a name no consumer takes
(`.part`) and renamed into place, which is atomic on POSIX file systems."""

from __future__ import annotations

import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + ".part"  # `_get` takes only names ending in .<queue>.msg
        try:
            with open(partial, "wb") as stream:
                stream.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
