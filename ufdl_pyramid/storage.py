"""Where job outputs live: blobs streamed in and out of storage, never held whole in memory.

`OutputStorage` is the interface views and services use; `LocalDirectoryStorage` is the one implementation so
far, chosen by `storage_from_settings`. `parse_range` turns an HTTP ``Range`` header into the byte span to
answer with. No Pyramid and no database here: the storage knows bytes and keys, nothing about jobs.
"""
import abc
import contextlib
import errno
import hashlib
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass
from typing import BinaryIO, Iterator, Protocol

from .errors import RETRY_AFTER_OUTAGE, InvalidInput, NotFound, PayloadTooLarge, ServiceError, ServiceUnavailable

log = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = 1 << 20
DEFAULT_STORAGE_PATH = os.path.join("var", "outputs")
STORAGE_PATH_SETTING = "ufdl.storage.path"


class BlobNotFound(NotFound):
    """No blob is stored under the key; a NotFound, so an uncaught one answers 404."""

    def __init__(self, key: str):
        super().__init__("no stored output under this key")
        self.key = key


class InvalidBlobKey(BlobNotFound, ValueError):
    """The key cannot name a blob of this storage (wrong shape, possibly a path traversal attempt)."""


class StorageFull(ServiceError):
    """The storage has no room left (ENOSPC, a quota): 507, and nothing of the blob was kept."""

    status = 507

    def __init__(self):
        super().__init__("The output storage is full: nothing was stored")


class StorageUnavailable(ServiceUnavailable):
    """The storage failed with an OS error other than a full disk (its directory turned into a file or read-only,
    a failing disk): 503 with Retry-After, and nothing of a blob being stored was kept. The client is only told
    to try again; what failed is logged for the operator where it is raised (`storage_unavailable`)."""

    retry_after = RETRY_AFTER_OUTAGE

    def __init__(self):
        super().__init__("The output storage cannot be used; try again shortly.")


def storage_unavailable(where: str, doing: str, error: OSError) -> StorageUnavailable:
    """The error to raise for an OS error that makes the storage at ``where`` unusable, once it is logged in one
    line (errno, reason and path: what the operator must fix)."""
    log.error("output storage %s: %s failed: %s", where, doing, error)
    return StorageUnavailable()


class DamagedBlob(ServiceError):
    """The blob holds fewer bytes than asked for, though the caller's range comes from the size recorded when it
    was stored: its file was cut short behind the server's back (a restore gone wrong, a damaged disk). Not a
    failure that passes with time, so 500 without Retry-After; the operator learns which blob from the log."""

    status = 500

    def __init__(self):
        super().__init__("The stored bytes of this output are damaged; the server's log says which.")


class BlobTooLarge(PayloadTooLarge):
    """The stream held more than max_size bytes; nothing of it was kept. Answers 413 if uncaught."""

    def __init__(self, max_size: int):
        super().__init__(f"the output is larger than the limit of {max_size} bytes")
        self.max_size = max_size


class UnreadableStream(InvalidInput):
    """Reading the stream to store failed (a request body shorter than its Content-Length): the sender's
    failure, not the storage's. Answers 400 if uncaught; nothing of it was kept."""

    def __init__(self, error: OSError):
        super().__init__(f"the output's bytes could not be read to their end: {error}")


@dataclass(frozen=True)
class StoredBlob:
    key: str
    size: int
    sha256: str


@dataclass(frozen=True)
class StagedBlob:
    """Bytes read in full and kept where no reader, listing or `delete` sees them: `publish` puts them under
    ``key``, `discard` drops them. ``location`` is the backend's own (a temporary file, a temporary object)."""
    key: str
    size: int
    sha256: str
    location: str


class ReadableStream(Protocol):
    def read(self, size: int, /) -> bytes: ...


class OutputStorage(abc.ABC):
    """A place to keep job outputs as opaque blobs, streamed in and out in chunks.

    Contract for every implementation (an object store such as S3 would be added by subclassing this):

    * Storing is two steps: `stage` consumes a stream to EOF into a place of its own (nothing readable under
      any key yet) and answers a `StagedBlob`; `publish` then puts it under its ``key`` and answers a
      `StoredBlob`, or `discard` drops it. `store` does both at once. The ``key`` is the only way back to the
      bytes. Keys are opaque to callers: keep them as given, never build or parse them. Each step is
      all-or-nothing: on any error of `stage` (including `BlobTooLarge`) nothing of the stream is kept, and
      on one of `publish` nothing of the staged bytes is left but (at worst) the blob under its key, which a
      caller that has no row for it deletes as any unreferenced blob. An OSError reading the stream is the
      sender's, raised as `UnreadableStream`. What a crash leaves staged, `prepare` removes at the next start.
    * What a request waits on (`stage`, `publish`, `store`, `open`, `size`, and `iter_range` until it answers)
      raises a failure of the backend itself as `StorageFull` for a full disk, else as `StorageUnavailable`
      (`storage_unavailable`): never a bare OSError, which would answer 500. The iterator `iter_range` answers
      raises an OSError as is: the answer has started, and the view can only cut it short. The upkeep calls
      (`prepare`, `keys`, `delete`, `discard`) raise the OSError as is too, for their caller to report
      (start-up stops, the sweep says why, the clean-up logs it).
    * Identical bytes may share one key (deduplication). Hence reference counting is NOT the storage's job:
      the database knows which outputs point at a key, and the caller deletes a blob only once no row refers
      to it any more. A `delete` racing with a `publish` of the same bytes can remove the blob just published,
      so callers serialise the two for a key: they `publish` only under the key's lock, held until their row
      is committed, and delete under it once no row refers to the key. Staging needs no lock (the key is only
      known once the bytes are read), and a staged blob is out of a deletion's reach.
    * `iter_range` raises `DamagedBlob` for a range that ends beyond the blob: callers ask for ranges within
      the size `store` answered, so the blob has lost bytes since.
    * `open`, `size` and `iter_range` raise `BlobNotFound` for an unknown key; `exists` answers False and
      `delete` does nothing for one. A key that this storage could never have issued may be refused with
      `InvalidBlobKey` (both a `BlobNotFound` and a `ValueError`) by every method.
    * `check_range` makes `iter_range`'s checks alone (for HEAD), and raises as it does.
    * `iter_range` has a generic implementation on top of `open`; override it where the backend can fetch a
      byte range directly (an HTTP ranged GET).
    """

    @abc.abstractmethod
    def stage(self, stream: ReadableStream, *, max_size: int, chunk_size: int = DEFAULT_CHUNK_SIZE) -> StagedBlob:
        """Read `stream` chunk by chunk until EOF and keep its bytes, with their SHA-256 and size, out of sight
        until `publish` or `discard`.

        Reads at most ``max_size + 1`` bytes: one byte past the limit is how an oversized stream is told from
        one of exactly ``max_size`` bytes, and reading then stops with `BlobTooLarge`.
        """

    @abc.abstractmethod
    def publish(self, staged: StagedBlob) -> StoredBlob:
        """Put the staged bytes under their key (identical bytes may be there already: they stay so); the staged
        copy is gone afterwards, whether this succeeds or fails."""

    @abc.abstractmethod
    def discard(self, staged: StagedBlob) -> None:
        """Drop staged bytes that will not be published; for a caller that fails between `stage` and
        `publish`."""

    def store(self, stream: ReadableStream, *, max_size: int, chunk_size: int = DEFAULT_CHUNK_SIZE) -> StoredBlob:
        """`stage` then `publish` at once: for a caller that need not serialise with deletions (see above)."""
        staged = self.stage(stream, max_size=max_size, chunk_size=chunk_size)
        return self.publish(staged)

    @abc.abstractmethod
    def open(self, key: str) -> BinaryIO:
        """A readable binary file object positioned at 0; the caller closes it."""

    @abc.abstractmethod
    def size(self, key: str) -> int:
        """The blob's length in bytes."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool:
        """Whether a blob is stored under the key."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove the blob; a missing one is not an error (deleting is idempotent)."""

    def prepare(self) -> int:
        """Called once at start-up: raise OSError if blobs cannot be stored, and remove what uploads that a
        crash interrupted left behind, staged or half-read (answers how many). Nothing to do by default."""
        return 0

    def keys(self, *, stored_before: float) -> Iterator[str]:
        """The keys of the blobs last written before ``stored_before`` (a ``time.time()``), in no particular
        order: what ``ufdl outputs sweep`` checks against the database. A backend without a listing leaves it
        unimplemented (the sweep then says so)."""
        raise NotImplementedError(f"{type(self).__name__} cannot list its blobs")

    def check_range(self, key: str, start: int, end: int) -> None:
        """What `iter_range` checks when called (the key, the range within the blob), with nothing opened: a
        HEAD answers as its GET would, and has no body to read."""
        if not 0 <= start <= end:
            raise ValueError(f"bytes {start}-{end} are not a range")
        size = self.size(key)
        if end >= size:
            log.error("output storage: blob %s holds %d bytes, the request asked for bytes %d-%d: it is damaged",
                      key, size, start, end)
            raise DamagedBlob()

    def iter_range(self, key: str, start: int, end: int,
                   chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
        """The bytes from `start` to `end` inclusive, in chunks of at most `chunk_size` bytes.

        Checks the key and the range when called, not when first iterated, so a view can still answer 404 or
        416 before the response has started. The blob stays open until the iterator is exhausted or closed
        (WSGI servers close an app_iter when the response ends).
        """
        _require_positive_chunk_size(chunk_size)
        self.check_range(key, start, end)
        blob = self.open(key)
        return _read_span(blob, start, end - start + 1, chunk_size)


def _read_span(blob: BinaryIO, start: int, length: int, chunk_size: int) -> Iterator[bytes]:
    with blob:
        blob.seek(start)
        remaining = length
        while remaining:
            chunk = blob.read(min(chunk_size, remaining))
            if not chunk:
                raise OSError(f"the blob ended {remaining} bytes before the requested range did")
            remaining -= len(chunk)
            yield chunk


def _require_positive_chunk_size(chunk_size: int) -> None:
    # A chunk size of 0 would read b"", which looks like EOF: store would silently keep an empty blob.
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, not {chunk_size}")


_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_FAN_OUT = re.compile(r"[0-9a-f]{2}")
_TEMPORARY_PREFIX = "upload-"
# An upload copies a body the server already holds (waitress buffers it), so its temporary file is written
# without pause: one untouched this long was left by a crash.
STALE_UPLOAD_SECONDS = 3600


class LocalDirectoryStorage(OutputStorage):
    """Blobs as files under one directory, content-addressed by their SHA-256.

    * The key is the lowercase SHA-256 hex of the bytes; the file is ``root/ab/cd/abcd...`` (two levels of
      fan-out keep each directory under 256 entries for millions of blobs). Any other key is refused with
      `InvalidBlobKey` before the filesystem is touched, so a key cannot traverse out of `root`.
    * Storing the same bytes twice keeps one file and answers the same key (deduplication; see
      `OutputStorage` for why deleting is then the caller's decision).
    * `stage` writes a temporary file in ``root/tmp/`` (same filesystem, so the final rename is atomic) and
      fsyncs it; `publish` `os.replace`-s it onto the final name: a reader sees the whole blob or none. A
      failed stage or publish, and `discard`, remove the temporary file; a crash leaves an ``upload-*`` file in
      ``root/tmp/`` that is never visible as a blob, and that `prepare` removes at the next start once it is
      an hour old.
    * A full disk (or quota) is `StorageFull` (507), any other OS error of `stage`, `publish`, `open` or `size`
      `StorageUnavailable` (503); nothing is kept, but for one case: the fsync of the blob's directory,
      after the rename, failing. The blob then stays (the same bytes may be another output's already: it is
      not ours to delete); `ufdl outputs sweep` removes it if no output refers to it.
    * Concurrent stores of identical bytes all succeed: each renames its own complete copy onto the same
      name, and the last one wins with identical content.
    * Fan-out directories are never removed, so a `delete` cannot pull a directory from under a concurrent
      `store` that is about to rename into it.
    """

    def __init__(self, root: str):
        # Absolute, so that a later change of working directory cannot move the store.
        self.root = os.path.abspath(root)
        self.temporary_directory = os.path.join(self.root, "tmp")

    def stage(self, stream: ReadableStream, *, max_size: int, chunk_size: int = DEFAULT_CHUNK_SIZE) -> StagedBlob:
        _require_positive_chunk_size(chunk_size)
        if max_size < 0:
            raise ValueError(f"max_size must not be negative, not {max_size}")
        with self._storage_errors("storing a blob"):
            return self._stage(stream, max_size, chunk_size)

    def _stage(self, stream: ReadableStream, max_size: int, chunk_size: int) -> StagedBlob:
        os.makedirs(self.temporary_directory, exist_ok=True)
        descriptor, temporary_path = tempfile.mkstemp(prefix=_TEMPORARY_PREFIX, dir=self.temporary_directory)
        try:
            with open(descriptor, "wb") as temporary_file:
                digest, size = _copy_with_limit(stream, temporary_file, max_size, chunk_size)
                temporary_file.flush()
                os.fsync(temporary_file.fileno())
        except BaseException:
            # BaseException too: an interrupted upload (KeyboardInterrupt, a greenlet kill) must not leak a file.
            _remove_if_present(temporary_path)
            raise
        key = digest.hexdigest()
        return StagedBlob(key=key, size=size, sha256=key, location=temporary_path)

    def publish(self, staged: StagedBlob) -> StoredBlob:
        final_path = self._path_for(staged.key)
        with self._storage_errors("storing a blob"):
            try:
                os.makedirs(os.path.dirname(final_path), exist_ok=True)
                os.replace(staged.location, final_path)
            except BaseException:
                _remove_if_present(staged.location)
                raise
            _fsync_directory(os.path.dirname(final_path))
        return StoredBlob(key=staged.key, size=staged.size, sha256=staged.sha256)

    def discard(self, staged: StagedBlob) -> None:
        _remove_if_present(staged.location)

    @contextlib.contextmanager
    def _storage_errors(self, doing: str):
        try:
            yield
        except OSError as error:
            if error.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageFull() from error
            raise storage_unavailable(self.root, doing, error) from error

    def prepare(self, *, stale_after: float = STALE_UPLOAD_SECONDS) -> int:
        """At start-up: make sure blobs can be written here (OSError otherwise), and remove the temporary files
        of uploads that a crash interrupted (untouched for ``stale_after`` seconds: one in progress is being
        written). Answers how many were removed."""
        os.makedirs(self.temporary_directory, exist_ok=True)
        descriptor, probe = tempfile.mkstemp(prefix="probe-", dir=self.temporary_directory)
        os.close(descriptor)
        os.remove(probe)
        removed = 0
        cutoff = time.time() - stale_after
        for entry in os.scandir(self.temporary_directory):
            if entry.name.startswith(_TEMPORARY_PREFIX) and entry.stat().st_mtime < cutoff:
                _remove_if_present(entry.path)
                removed += 1
        return removed

    def keys(self, *, stored_before: float) -> Iterator[str]:
        # A blob's file keeps the time its upload last wrote it (the rename keeps it): an upload whose row
        # has not committed yet wrote its file moments ago.
        for first in _subdirectories(self.root):
            for second in _subdirectories(first.path):
                for entry in os.scandir(second.path):
                    if not (_SHA256_HEX.fullmatch(entry.name) and entry.is_file(follow_symlinks=False)):
                        continue
                    try:
                        written = entry.stat(follow_symlinks=False).st_mtime
                    except FileNotFoundError:
                        continue  # deleted since the directory was read
                    if written < stored_before:
                        yield entry.name

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self._path_for(key), "rb")
        except FileNotFoundError:
            raise BlobNotFound(key) from None
        except OSError as error:
            raise storage_unavailable(self.root, "opening a blob", error) from error

    def size(self, key: str) -> int:
        try:
            return os.stat(self._path_for(key)).st_size
        except FileNotFoundError:
            raise BlobNotFound(key) from None
        except OSError as error:
            raise storage_unavailable(self.root, "reading a blob's size", error) from error

    def exists(self, key: str) -> bool:
        return os.path.isfile(self._path_for(key))

    def delete(self, key: str) -> None:
        _remove_if_present(self._path_for(key))

    def _path_for(self, key: str) -> str:
        if not isinstance(key, str) or not _SHA256_HEX.fullmatch(key):
            raise InvalidBlobKey(str(key))
        return os.path.join(self.root, key[0:2], key[2:4], key)


def _copy_with_limit(stream: ReadableStream, target: BinaryIO, max_size: int, chunk_size: int):
    digest = hashlib.sha256()
    size = 0
    while True:
        try:
            # Never ask for more than one byte past the limit, so an endless stream is cut off promptly.
            chunk = stream.read(min(chunk_size, max_size - size + 1))
        except OSError as error:
            raise UnreadableStream(error) from error
        if not chunk:
            return digest, size
        size += len(chunk)
        if size > max_size:
            raise BlobTooLarge(max_size)
        digest.update(chunk)
        target.write(chunk)


def _subdirectories(path: str) -> list[os.DirEntry]:
    """The fan-out directories under ``path`` (two hex digits each; ``tmp`` and anything else skipped)."""
    try:
        entries = list(os.scandir(path))
    except FileNotFoundError:
        return []
    return [entry for entry in entries if _FAN_OUT.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False)]


def _remove_if_present(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _fsync_directory(path: str) -> None:
    # The rename is only durable once the directory entry is on disk too; Windows cannot open directories.
    if os.name != "posix":
        return
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def storage_from_settings(settings: dict) -> OutputStorage:
    """The storage the app's settings name: a local directory (``ufdl.storage.path``, default var/outputs)."""
    return LocalDirectoryStorage(settings.get(STORAGE_PATH_SETTING) or DEFAULT_STORAGE_PATH)


class RangeNotSatisfiable(ServiceError):
    """The Range header asks only for bytes past the end: answer 416 with ``Content-Range: bytes */size``.

    An uncaught one still answers 416 (without that header), never 500.
    """

    status = 416

    def __init__(self, size: int):
        super().__init__(f"the requested range is outside the {size} bytes available")
        self.size = size
        self.content_range = f"bytes */{size}"


# RFC 9110 §14.1.1: range-unit is case-insensitive; positions are ASCII digits only (int() would also take
# Unicode digits, signs and underscores, hence the explicit pattern).
_BYTE_RANGE_SET = re.compile(r"\s*bytes\s*=(.*)", re.IGNORECASE | re.DOTALL)
_RANGE_SPEC = re.compile(r"([0-9]*)-([0-9]*)")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive (start, end) a ``Range`` header asks of a body of `size` bytes, following RFC 9110.

    Answers None when the whole body should be served instead: no header, another unit, a malformed header
    (RFC 9110 says to ignore it), or several ranges (we do not build multipart/byteranges answers, and a
    server may always ignore Range). Raises `RangeNotSatisfiable` when the single range starts at or past
    the end (``bytes=-0`` included), so the caller answers 416. The end is clamped to ``size - 1``, and a
    suffix longer than the body means the whole body.
    """
    if not header:
        return None
    range_set = _BYTE_RANGE_SET.fullmatch(header)
    if range_set is None:
        return None
    # Lists may carry empty elements ("bytes=0-1,"), which recipients are to ignore.
    specs = [spec.strip() for spec in range_set.group(1).split(",") if spec.strip()]
    if len(specs) != 1:
        return None
    spec = _RANGE_SPEC.fullmatch(specs[0])
    if spec is None:
        return None
    first, last = spec.groups()
    if first:
        if last and _less(last, first):
            return None
        start = _at_most(first, size)
        if start >= size:
            raise RangeNotSatisfiable(size)
        end = _at_most(last, size - 1) if last else size - 1
        return start, end
    if not last:
        return None
    if not last.lstrip("0"):
        raise RangeNotSatisfiable(size)
    if size == 0:
        # RFC 9110 calls this satisfiable, but no Content-Range can describe zero bytes: serve the empty body.
        return None
    return size - _at_most(last, size), size - 1


# A position may have any number of digits, but int() refuses over 4,300 (a ValueError): positions are compared
# as digit strings, and converted only once at most as long as the limit they are clamped to.
def _less(digits: str, other: str) -> bool:
    digits, other = digits.lstrip("0"), other.lstrip("0")
    return (len(digits), digits) < (len(other), other)


def _at_most(digits: str, limit: int) -> int:
    digits = digits.lstrip("0")
    return limit if len(digits) > len(str(limit)) else min(int(digits or "0"), limit)
