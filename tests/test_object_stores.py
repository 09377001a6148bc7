"""One contract for every object store (``Objects``): S3 (moto's server), GCS (fake-gcs-server)
and Azure (Azurite), each a bucket made for the test (``tests/object_stores.py``).

The contract: ``get`` gives ``None`` before the first write and the bytes with their version
after; a write only-if-absent or only-if-unchanged is refused (``Conflict``) once the object
is not what the condition named, and the winner's bytes stand; ``put_once`` never replaces
an object and keeps its metadata, so an output uploaded but never recorded is recognised;
a missing bucket is named as such, never taken for a missing object. Also: the registry
names a store, its extra and its capabilities for every scheme a bucket URL may have.
"""

from __future__ import annotations

import pytest

from dapctl.buckets import SCHEMES, Bucket
from dapctl.errors import StateError
from dapctl.objects import Conflict, open_objects, store_for
from dapctl.objects.registry import STORES
from tests.object_stores import STORES as TESTED


def _objects(bucket, name=None):
    return open_objects(bucket.scheme, name or bucket.bucket, error=StateError)


def test_nothing_is_there_before_the_first_write(bucket):
    objects = _objects(bucket)
    assert objects.get("states/x") is None and objects.head("states/x") is None
    assert objects.exists("states/x") is False


def test_a_write_only_if_absent_wins_once(bucket):
    objects = _objects(bucket)
    version = objects.put("k", b"first", if_absent=True)

    with pytest.raises(Conflict):
        objects.put("k", b"second", if_absent=True)

    assert objects.get("k") == (b"first", version)
    assert bucket.read(bucket.url("k")) == b"first"


def test_a_write_only_if_unchanged_refuses_a_stale_version(bucket):
    objects, other = _objects(bucket), _objects(bucket)
    first = objects.put("k", b"one", if_absent=True)
    second = other.put("k", b"two", if_match=first)  # another writer, from the same read

    with pytest.raises(Conflict):
        objects.put("k", b"three", if_match=first)

    assert second != first and objects.get("k") == (b"two", second)
    head = objects.head("k")
    assert head is not None and head.token == second and 0 <= head.age < 600


def test_a_write_only_if_unchanged_refuses_a_removed_object(bucket):
    objects = _objects(bucket)
    version = objects.put("k", b"one", if_absent=True)
    objects.delete("k", if_match=version)

    with pytest.raises(Conflict):
        objects.put("k", b"two", if_match=version)
    with pytest.raises(Conflict):
        objects.delete("k", if_match=version)
    assert objects.get("k") is None


def test_a_delete_only_if_unchanged_refuses_a_stale_version(bucket):
    if bucket.scheme == "gs":
        pytest.skip(
            "fake-gcs-server ignores ifGenerationMatch on DELETE (GCS honours it); the state "
            "checks the generation before it deletes, which the state contract tests"
        )
    objects = _objects(bucket)
    first = objects.put("k", b"one", if_absent=True)
    objects.put("k", b"two", if_match=first)

    with pytest.raises(Conflict):
        objects.delete("k", if_match=first)
    assert objects.get("k")[0] == b"two"


def test_put_once_never_replaces_an_object_and_keeps_its_metadata(bucket, tmp_path):
    store = Bucket(bucket.scheme, bucket.bucket)
    local = tmp_path / "one"
    local.write_bytes(b"one")
    assert store.put_once(local, "out/obj", metadata={"dapctl-sha256": "x"}) is True
    local.write_bytes(b"two")

    assert store.put_once(local, "out/obj", metadata={"dapctl-sha256": "y"}) is False

    assert bucket.read(bucket.url("out/obj")) == b"one"
    assert store.metadata("out/obj") == {"dapctl-sha256": "x"}
    assert store.exists("out/obj") and not store.exists("out")
    store.remove("out/obj")
    assert bucket.objects() == []


def test_a_large_object_arrives_whole(bucket, tmp_path):
    local = tmp_path / "big"
    local.write_bytes(bytes(range(256)) * (24 << 10))  # 6 MiB: S3 multipart, GCS resumable
    store = Bucket(bucket.scheme, bucket.bucket)
    store.chunksize = 5 << 20

    assert store.put_once(local, "big", metadata={}) is True

    assert bucket.read(bucket.url("big")) == local.read_bytes()
    if bucket.scheme == "gs":
        pytest.skip(
            "fake-gcs-server ignores ifGenerationMatch=0 on a resumable upload (GCS honours "
            "it); objects under 5 MiB go as one multipart upload, whose condition it keeps"
        )
    assert store.put_once(local, "big", metadata={}) is False


def test_a_missing_bucket_is_named_not_taken_for_a_missing_object(bucket):
    missing = f"{bucket.bucket}-missing"
    objects = _objects(bucket, missing)

    with pytest.raises(StateError, match=f"{bucket.scheme}://{missing}: no such bucket, so k"):
        objects.get("k")
    with pytest.raises(StateError, match="no such bucket"):
        objects.check()
    objects_here = _objects(bucket)
    objects_here.check()


def test_every_bucket_scheme_has_a_store_and_every_store_is_tested():
    assert set(SCHEMES) == {"s3", "gs", "gcs", "az", "abfs"}
    for scheme in SCHEMES:
        store = store_for(scheme)
        assert store is not None and scheme in store.schemes
    assert {store.name for store in STORES} == set(TESTED), "add the store to the suites"
    assert [s.name for s in STORES if s.aborts_uploads] == ["s3"]
