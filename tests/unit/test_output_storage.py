"""The output storage: content-addressed local blobs, streaming with flat memory, and Range header parsing."""
import hashlib
import io
import os
import threading
import time
import tracemalloc

import pytest

from ufdl_pyramid.errors import NotFound, PayloadTooLarge
from ufdl_pyramid.storage import (BlobNotFound, BlobTooLarge, DamagedBlob, InvalidBlobKey, LocalDirectoryStorage,
                                  OutputStorage, RangeNotSatisfiable, StoredBlob, UnreadableStream,
                                  parse_range, storage_from_settings)

MiB = 1 << 20


@pytest.fixture
def storage(tmp_path):
    return LocalDirectoryStorage(str(tmp_path / "outputs"))


def files_under(root: str) -> list[str]:
    return sorted(os.path.relpath(os.path.join(folder, name), root)
                  for folder, _, names in os.walk(root) for name in names)


class GeneratedStream:
    """A file-like object over a repeated pattern: nothing is built ahead, so memory use is the reader's."""

    def __init__(self, total: int, piece: bytes = bytes(range(256)) * 4096, fail_after: int | None = None):
        self.remaining = total
        self.piece = memoryview(piece)
        self.fail_after = fail_after
        self.bytes_read = 0

    def read(self, size: int) -> bytes:
        if self.fail_after is not None and self.bytes_read >= self.fail_after:
            raise ConnectionResetError("client went away")
        size = min(size, self.remaining, len(self.piece))
        self.remaining -= size
        self.bytes_read += size
        return self.piece[:size].tobytes()  # a fresh object per read, as a socket would give


def test_round_trip(storage):
    content = os.urandom(3 * MiB + 17)
    blob = storage.store(io.BytesIO(content), max_size=10 * MiB)
    assert blob == StoredBlob(key=blob.key, size=len(content), sha256=hashlib.sha256(content).hexdigest())
    assert storage.exists(blob.key)
    assert storage.size(blob.key) == len(content)
    with storage.open(blob.key) as stored:
        assert stored.tell() == 0
        assert stored.read() == content
    storage.delete(blob.key)
    assert not storage.exists(blob.key)
    storage.delete(blob.key)
    with pytest.raises(BlobNotFound):
        storage.open(blob.key)
    with pytest.raises(BlobNotFound):
        storage.size(blob.key)


def test_blobs_are_laid_out_by_their_hash(storage):
    blob = storage.store(io.BytesIO(b"hello"), max_size=100)
    assert blob.key == blob.sha256 == hashlib.sha256(b"hello").hexdigest()
    assert files_under(storage.root) == [os.path.join(blob.key[:2], blob.key[2:4], blob.key)]


def test_empty_stream_is_a_blob(storage):
    blob = storage.store(io.BytesIO(b""), max_size=0)
    assert (blob.size, blob.sha256) == (0, hashlib.sha256(b"").hexdigest())
    assert storage.open(blob.key).read() == b""


def test_identical_contents_are_stored_once(storage):
    first = storage.store(io.BytesIO(b"same bytes"), max_size=100)
    second = storage.store(io.BytesIO(b"same bytes"), max_size=100, chunk_size=3)
    assert first == second
    assert len(files_under(storage.root)) == 1


def test_different_contents_get_different_keys(storage):
    first = storage.store(io.BytesIO(b"one"), max_size=100)
    second = storage.store(io.BytesIO(b"two"), max_size=100)
    assert first.key != second.key
    assert storage.open(first.key).read() == b"one"
    assert storage.open(second.key).read() == b"two"
    assert len(files_under(storage.root)) == 2


def test_exactly_max_size_is_accepted(storage):
    assert storage.store(io.BytesIO(b"x" * 1000), max_size=1000, chunk_size=100).size == 1000


def test_too_large_a_stream_is_refused_and_leaves_nothing(storage):
    stream = GeneratedStream(total=10 * MiB)
    with pytest.raises(BlobTooLarge) as refused:
        storage.store(stream, max_size=MiB + 5, chunk_size=64 * 1024)
    assert refused.value.max_size == MiB + 5
    assert isinstance(refused.value, PayloadTooLarge) and refused.value.status == 413
    assert stream.bytes_read == MiB + 6, "reading stops one byte past the limit"
    assert files_under(storage.root) == []


def test_an_endless_stream_is_cut_off(storage):
    stream = GeneratedStream(total=1 << 62)
    with pytest.raises(BlobTooLarge):
        storage.store(stream, max_size=2 * MiB)
    assert stream.bytes_read == 2 * MiB + 1


def test_a_stream_failing_midway_leaves_nothing(storage):
    # The sender's failure, told apart from the storage's (a 400, not a 503).
    with pytest.raises(UnreadableStream) as failed:
        storage.store(GeneratedStream(total=8 * MiB, fail_after=3 * MiB), max_size=100 * MiB)
    assert isinstance(failed.value.__cause__, ConnectionResetError) and failed.value.status == 400
    assert files_under(storage.root) == []


def test_an_interrupted_store_leaves_nothing(storage):
    """Not an Exception (Ctrl-C, a greenlet killed mid-upload): its temporary file must go all the same."""
    class Interrupted(io.BytesIO):
        def read(self, size=-1):
            if self.tell():
                raise KeyboardInterrupt
            return super().read(100)

    with pytest.raises(KeyboardInterrupt):
        storage.store(Interrupted(b"x" * 1000), max_size=MiB)
    assert files_under(storage.root) == []

def test_a_failure_after_earlier_blobs_keeps_them(storage):
    kept = storage.store(io.BytesIO(b"kept"), max_size=100)
    with pytest.raises(UnreadableStream):
        storage.store(GeneratedStream(total=MiB, fail_after=1000), max_size=MiB, chunk_size=100)
    assert files_under(storage.root) == [os.path.join(kept.key[:2], kept.key[2:4], kept.key)]


@pytest.mark.parametrize("key", ["../x", "../" * 10 + "etc/passwd", "A" * 64, "a" * 63, "a" * 65, "",
                                 "/" + "a" * 63, "g" * 64, "a" * 64 + "\n", None])
def test_malformed_keys_are_refused(storage, key):
    for action in (storage.open, storage.size, storage.exists, storage.delete, storage.iter_range):
        arguments = (key, 0, 0) if action == storage.iter_range else (key,)
        with pytest.raises(InvalidBlobKey) as refused:
            action(*arguments)
        assert isinstance(refused.value, BlobNotFound) and isinstance(refused.value, ValueError)
        assert isinstance(refused.value, NotFound)


def test_uppercase_spelling_of_a_stored_key_is_refused(storage):
    blob = storage.store(io.BytesIO(b"content"), max_size=100)
    with pytest.raises(InvalidBlobKey):
        storage.open(blob.key.upper())


def test_concurrent_identical_stores_all_succeed(storage):
    content = os.urandom(2 * MiB)
    start = threading.Barrier(8)
    results, failures = [], []

    def store():
        try:
            start.wait()
            results.append(storage.store(io.BytesIO(content), max_size=4 * MiB, chunk_size=64 * 1024))
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=store) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(results) == 8 and len(set(results)) == 1
    assert files_under(storage.root) == [os.path.join(results[0].key[:2], results[0].key[2:4], results[0].key)]
    assert storage.open(results[0].key).read() == content


def test_staged_bytes_are_out_of_sight_until_published(storage):
    """What lets an upload read its bytes before it takes the key's lock: a deletion of the key meanwhile (the
    clean-up of identical bytes) cannot remove them, and the sweep does not list them."""
    staged = storage.stage(io.BytesIO(b"content"), max_size=100)
    assert staged.key == hashlib.sha256(b"content").hexdigest() and staged.size == 7
    assert not storage.exists(staged.key)
    assert list(storage.keys(stored_before=float("inf"))) == []
    storage.delete(staged.key)
    blob = storage.publish(staged)
    assert (blob.key, blob.size, blob.sha256) == (staged.key, staged.size, staged.sha256)
    assert storage.open(blob.key).read() == b"content"
    assert os.listdir(storage.temporary_directory) == []


def test_discarded_bytes_leave_nothing(storage):
    storage.discard(storage.stage(io.BytesIO(b"content"), max_size=100))
    assert files_under(storage.root) == []


def test_a_failed_publish_leaves_nothing_staged(storage, monkeypatch):
    import errno

    from ufdl_pyramid.storage import StorageUnavailable

    staged = storage.stage(io.BytesIO(b"content"), max_size=100)

    def failing_disk(source, target):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "replace", failing_disk)
    with pytest.raises(StorageUnavailable):
        storage.publish(staged)
    assert files_under(storage.root) == []


def test_storing_64_mib_keeps_memory_flat(storage):
    total = 64 * MiB
    expected = hashlib.sha256()
    reference = GeneratedStream(total=total)
    while chunk := reference.read(MiB):
        expected.update(chunk)
    stream = GeneratedStream(total=total)
    tracemalloc.start()
    try:
        blob = storage.store(stream, max_size=total)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (blob.size, blob.sha256) == (total, expected.hexdigest())
    assert peak < 8 * MiB, f"peak {peak / MiB:.1f} MiB"


def test_creates_its_directories_and_reads_settings(tmp_path, monkeypatch):
    nested = tmp_path / "a" / "b"
    storage = storage_from_settings({"ufdl.storage.path": str(nested)})
    assert isinstance(storage, OutputStorage)
    blob = storage.store(io.BytesIO(b"data"), max_size=10)
    assert LocalDirectoryStorage(str(nested)).open(blob.key).read() == b"data"
    monkeypatch.chdir(tmp_path)
    default = storage_from_settings({})
    assert default.root == str(tmp_path / "var" / "outputs")


def test_invalid_limits_are_refused(storage):
    with pytest.raises(ValueError):
        storage.store(io.BytesIO(b"x"), max_size=10, chunk_size=0)
    with pytest.raises(ValueError):
        storage.store(io.BytesIO(b"x"), max_size=-1)


@pytest.fixture
def ranged(storage):
    content = bytes(range(256)) * 40  # 10240 bytes
    return storage, storage.store(io.BytesIO(content), max_size=len(content)).key, content


@pytest.mark.parametrize("start,end,chunk_size", [
    (0, 10239, 1 << 20), (0, 10239, 1024), (0, 0, 7), (10239, 10239, 7), (100, 2147, 1024),
    (1023, 1024, 1024), (1024, 2047, 1024), (5, 5000, 1), (3, 8195, 4096),
])
def test_iter_range(ranged, start, end, chunk_size):
    storage, key, content = ranged
    chunks = list(storage.iter_range(key, start, end, chunk_size=chunk_size))
    assert b"".join(chunks) == content[start:end + 1]
    assert all(0 < len(chunk) <= chunk_size for chunk in chunks)
    assert len(chunks) == -(-(end - start + 1) // chunk_size)


@pytest.mark.parametrize("start,end", [(-1, 5), (6, 5)])
def test_iter_range_refuses_what_is_not_a_range(ranged, start, end):
    storage, key, _ = ranged
    with pytest.raises(ValueError):
        storage.iter_range(key, start, end)


@pytest.mark.parametrize("start,end", [(0, 10240), (10240, 10240)])
def test_a_range_beyond_the_blob_means_the_blob_is_damaged(ranged, start, end):
    # Callers ask within the size that store answered: a blob shorter than that lost bytes since.
    storage, key, _ = ranged
    with pytest.raises(DamagedBlob):
        storage.iter_range(key, start, end)


def test_iter_range_checks_when_called_and_closes_when_done(ranged, monkeypatch):
    storage, key, _ = ranged
    with pytest.raises(BlobNotFound):
        storage.iter_range("0" * 64, 0, 0)
    opened = []
    original_open = storage.open
    monkeypatch.setattr(storage, "open", lambda k: opened.append(original_open(k)) or opened[-1])
    chunks = storage.iter_range(key, 0, 10239, chunk_size=100)
    next(chunks)
    chunks.close()
    assert opened[0].closed


@pytest.mark.parametrize("header,size,expected", [
    (None, 100, None),
    ("", 100, None),
    ("bytes=0-99", 100, (0, 99)),
    ("bytes=0-0", 100, (0, 0)),
    ("bytes=10-19", 100, (10, 19)),
    ("bytes=10-", 100, (10, 99)),
    ("bytes=50-1000", 100, (50, 99)),
    ("bytes=99-", 100, (99, 99)),
    ("bytes=-10", 100, (90, 99)),
    ("bytes=-100", 100, (0, 99)),
    ("bytes=-500", 100, (0, 99)),
    ("bytes=007-008", 100, (7, 8)),
    ("bytes=5-" + "9" * 5000, 100, (5, 99)),  # past the 4,300 digits int() takes
    ("bytes=-" + "9" * 5000, 100, (0, 99)),
    ("bytes=" + "9" * 5000 + "-" + "8" * 5000, 100, None),
    ("BYTES = 5-6", 100, (5, 6)),
    ("bytes= 5-6 ,", 100, (5, 6)),
    ("bytes=-5", 0, None),
    ("bytes=0-1,5-6", 100, None),
    ("bytes=0-1, 200-300", 100, None),
    ("bytes=5-4", 100, None),
    ("bytes=-", 100, None),
    ("bytes=abc", 100, None),
    ("bytes=1-2-3", 100, None),
    ("bytes=+1-2", 100, None),
    ("bytes=\u0661-\u0662", 100, None),
    ("bytes=1 - 2", 100, None),
    ("bytes=", 100, None),
    ("items=0-5", 100, None),
    ("0-5", 100, None),
])
def test_parse_range(header, size, expected):
    assert parse_range(header, size) == expected


@pytest.mark.parametrize("header,size", [
    ("bytes=100-", 100), ("bytes=100-200", 100), ("bytes=500-600", 100), ("bytes=-0", 100), ("bytes=-000", 100), ("bytes=" + "9" * 5000 + "-", 100),
    ("bytes=0-", 0), ("bytes=0-0", 0), ("bytes=-0", 0),
])
def test_parse_range_unsatisfiable(header, size):
    with pytest.raises(RangeNotSatisfiable) as refused:
        parse_range(header, size)
    assert refused.value.status == 416
    assert refused.value.content_range == f"bytes */{size}"


def test_prepare_removes_what_crashed_uploads_left_and_checks_the_path(storage, tmp_path):
    os.makedirs(storage.temporary_directory, exist_ok=True)
    stale = os.path.join(storage.temporary_directory, "upload-crashed")
    fresh = os.path.join(storage.temporary_directory, "upload-in-progress")
    not_ours = os.path.join(storage.temporary_directory, "notes.txt")
    for path in (stale, fresh, not_ours):
        with open(path, "wb") as file:
            file.write(b"partial")
    for path in (stale, not_ours):
        os.utime(path, (0, 0))  # untouched since 1970: no upload in progress writes like that
    assert storage.prepare() == 1
    assert not os.path.exists(stale) and os.path.exists(fresh)
    assert os.path.exists(not_ours), "only what an upload left is removed"
    (tmp_path / "a-file").write_text("not a directory")
    with pytest.raises(OSError):
        LocalDirectoryStorage(str(tmp_path / "a-file" / "outputs")).prepare()


@pytest.mark.parametrize("error_number", ["ENOSPC", "EDQUOT"])  # a full disk, or the user's quota reached
def test_a_full_disk_is_storage_full_and_keeps_nothing(storage, monkeypatch, error_number):
    import errno

    from ufdl_pyramid.storage import StorageFull

    def no_room(descriptor):
        raise OSError(getattr(errno, error_number), "No space left")

    monkeypatch.setattr(os, "fsync", no_room)
    with pytest.raises(StorageFull) as full:
        storage.store(io.BytesIO(b"data"), max_size=100)
    assert full.value.status == 507
    assert files_under(storage.root) == []


def test_any_other_os_error_is_storage_unavailable_logged_once_and_keeps_nothing(storage, monkeypatch, caplog):
    import errno

    from ufdl_pyramid.storage import StorageUnavailable

    def failing_disk(descriptor):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_disk)
    with pytest.raises(StorageUnavailable) as failed:
        storage.store(io.BytesIO(b"data"), max_size=100)
    assert failed.value.status == 503 and failed.value.retry_after == 5
    assert files_under(storage.root) == []
    assert [(record.levelname, record.getMessage()) for record in caplog.records] == [
        ("ERROR", f"output storage {storage.root}: storing a blob failed: [Errno 5] Input/output error")]


def test_a_blob_that_cannot_be_opened_is_storage_unavailable(storage, caplog):
    from ufdl_pyramid.storage import StorageUnavailable

    key = storage.store(io.BytesIO(b"data"), max_size=100).key
    path = storage._path_for(key)
    os.remove(path)
    os.mkdir(path)  # EISDIR: a restore gone wrong, say
    with pytest.raises(StorageUnavailable):
        storage.open(key)
    assert [record.getMessage() for record in caplog.records] == [
        f"output storage {storage.root}: opening a blob failed: [Errno 21] Is a directory: '{path}'"]


def test_listing_skips_what_is_not_a_blob(tmp_path):
    storage = LocalDirectoryStorage(str(tmp_path))
    key = storage.store(io.BytesIO(b"bytes"), max_size=10).key
    (tmp_path / "tmp" / "upload-123").write_bytes(b"partial")
    (tmp_path / key[:2] / key[2:4] / "notes.txt").write_text("not a blob")
    (tmp_path / "zz").mkdir()
    assert list(storage.keys(stored_before=time.time() + 1)) == [key]
    assert list(storage.keys(stored_before=time.time() - 60)) == []
    assert list(LocalDirectoryStorage(str(tmp_path / "missing")).keys(stored_before=time.time())) == []
