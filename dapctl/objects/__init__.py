"""Object stores: one bucket of S3, GCS or Azure Blob Storage behind one ``Objects`` protocol.

Module map: ``base`` (the ``Objects`` protocol, ``Conflict``, ``Head``, and ``FsspecObjects``,
what every store shares: its fsspec filesystem, errors naming the bucket), ``registry`` (scheme
-> store module, the extra that installs it, what it can do; ``open_objects`` is the factory),
``diagnose`` (a store's exception as a message a user can act on, never a secret), ``s3``,
``gcs``, ``azure`` (the stores). State in a bucket (``state/objects``) and outputs in one
(``outputs/objects``) use the protocol only, so a new store is one module and one registry line.
"""

from __future__ import annotations

from dapctl.objects.base import Conflict, Head, Objects
from dapctl.objects.registry import STORES, ObjectStore, install_hint, open_objects, store_for

__all__ = [
    "STORES",
    "Conflict",
    "Head",
    "ObjectStore",
    "Objects",
    "install_hint",
    "open_objects",
    "store_for",
]
