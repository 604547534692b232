"""Keras' dataset cache: find a verified copy, or download one once, atomically.

The layout is Keras' own (``keras.utils.get_file``): files live under
``$KERAS_HOME/datasets`` (default ``~/.keras/datasets``), so a copy a Keras
installation has downloaded is found and used, and a copy downloaded here is
one Keras will use. Where that folder is not writable, Keras falls back to
``/tmp/.keras``; so does this module, both to look for copies and to write them.

Every file is checked against a pinned SHA-256 before it is used, whether it
was found or downloaded. A download streams into a temporary file beside its
target and is renamed into place (``os.replace``) only once its hash matches,
so an interrupted or corrupted download never leaves a file that looks
complete.
"""
import hashlib
import http.client
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request

from ..callbacks import _format_time

# Seconds a stalled connection may stay silent before the download is abandoned.
_TIMEOUT = 60
_CHUNK = 1 << 16


class DownloadError(OSError):
    """A dataset file could not be downloaded (no network, HTTP error, cut connection)."""


class ChecksumError(ValueError):
    """A downloaded file's SHA-256 is not the one pinned for it."""


def keras_home():
    """Keras' base folder: ``$KERAS_HOME``, else ``~/.keras`` (``/tmp/.keras`` where the
    home folder is not writable), read at each call as Keras reads it at import."""
    if "KERAS_HOME" in os.environ:
        return os.path.expanduser(os.environ["KERAS_HOME"])
    home = os.path.expanduser("~")
    return os.path.join(home if os.access(home, os.W_OK) else _tmp_root(), ".keras")


def _tmp_root():
    return "/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()


def _fallback_home():
    return os.path.join(_tmp_root(), ".keras")


def cache_dirs(subdir="datasets"):
    """The folders a cached copy may be in: Keras' cache, then, where that cannot be
    written (so that Keras would use it), the /tmp fallback."""
    home = keras_home()
    dirs = [os.path.join(home, subdir)]
    if not _can_write(home):
        dirs.append(os.path.join(_fallback_home(), subdir))
    return dirs


def _can_write(directory):
    """Whether `directory` is writable, or does not exist and could be created."""
    directory = os.path.abspath(directory)
    while not os.path.exists(directory):
        parent = os.path.dirname(directory)
        if parent == directory:
            return False
        directory = parent
    return os.path.isdir(directory) and os.access(directory, os.W_OK)


def _writable_dir(subdir):
    """Where a download goes: Keras' cache, created if need be, else the /tmp fallback."""
    for base in (keras_home(), _fallback_home()):
        directory = os.path.join(base, subdir)
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError:
            continue
        if os.access(directory, os.W_OK):
            return directory
    raise DownloadError(f"neither {keras_home()} nor {_fallback_home()} is writable; "
                        f"set KERAS_HOME to a writable folder")


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verified(path, sha256):
    """Whether `path` is a file whose SHA-256 is `sha256`."""
    return os.path.isfile(path) and sha256_of(path) == sha256


def cached(names, sha256, subdir="datasets"):
    """The path of a cached copy under any of `names` whose SHA-256 is `sha256`, or None.

    A copy with another hash is reported (as Keras reports it) and skipped, so that
    get_file downloads a good one over it.
    """
    for directory in cache_dirs(subdir):
        for name in names:
            path = os.path.join(directory, name)
            if verified(path, sha256):
                return path
            if os.path.isfile(path):
                print(f"A local file was found at {path}, but its SHA-256 is not {sha256} "
                      f"(incomplete or outdated), so the data will be downloaded again.")
    return None


def get_file(names, origin, sha256, subdir="datasets"):
    """The path of a verified copy of `origin`: a cached one, else a fresh download.

    `names` are the file names Keras versions have used for this file in the cache
    (a string or a tuple); a download is saved under the first.
    """
    names = (names,) if isinstance(names, str) else tuple(names)
    return cached(names, sha256, subdir) or download(origin, names[0], sha256, subdir)


def download(origin, name, sha256, subdir="datasets", stream=None):
    """Download `origin` into the cache as `name`, verify it, and return its path.

    The data goes to a hidden temporary file in the target folder, which is removed
    on any failure (KeyboardInterrupt included) and renamed to `name` only after its
    SHA-256 matched. A progress bar goes to `stream` (stdout, as in Keras).
    """
    directory = _writable_dir(subdir)
    target = os.path.join(directory, name)
    stream = sys.stdout if stream is None else stream
    stream.write(f"Downloading data from {origin}\n")
    stream.flush()
    partial = _temporary_path(directory, name)
    try:
        digest = _fetch(origin, partial, target, sha256, stream)
        if digest != sha256:
            raise ChecksumError(f"the file downloaded from {origin} has SHA-256 {digest}, not "
                                f"the pinned {sha256}; it was discarded (corrupted in transit, "
                                f"or the server sent something else)")
        os.replace(partial, target)
    except BaseException:
        if os.path.exists(partial):
            os.remove(partial)
        raise
    return target


def _temporary_path(directory, name):
    """A new hidden file beside `name`, created with the mode the umask gives (mkstemp's
    0600 would make a shared cache unreadable to others)."""
    while True:
        path = os.path.join(directory, f".{name}.{os.urandom(6).hex()}.part")
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return path
        except FileExistsError:
            continue


def _fetch(origin, partial, target, sha256, stream):
    """Stream `origin` into `partial`; return the SHA-256 of what arrived. Network
    failures become a DownloadError that says where to put the file by hand; disk
    errors pass through as they are."""
    def failed(reason):
        return DownloadError(f"cannot download {origin} ({reason}). To load the data without "
                             f"downloading it, put that file at {target} (its SHA-256 is "
                             f"{sha256}); Keras keeps the same file there, so a copy from a "
                             f"Keras installation works.")

    try:
        response = urllib.request.urlopen(origin, timeout=_TIMEOUT)
    except urllib.error.HTTPError as error:
        raise failed(f"HTTP {error.code} {error.reason}") from None
    except urllib.error.URLError as error:
        raise failed(error.reason) from None
    except (OSError, ValueError, http.client.HTTPException) as error:
        raise failed(error) from None
    digest = hashlib.sha256()
    with response, open(partial, "wb") as out:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        progress = _Progress(total, stream)
        received = 0
        while True:
            try:
                chunk = response.read(_CHUNK)
            except (OSError, http.client.HTTPException) as error:
                raise failed(f"the connection failed after {received} bytes: {error}") from None
            if not chunk:
                break
            out.write(chunk)
            digest.update(chunk)
            received += len(chunk)
            progress.update(received)
        progress.finish(received)
        out.flush()
        os.fsync(out.fileno())
    if total is not None and received != total:
        raise failed(f"the connection closed after {received} of {total} bytes")
    return digest.hexdigest()


class _Progress:
    """Keras' download bar: on a terminal ``4422102/4422102 ━━━━━━━━━━ 1s 3.1 MB/s``
    redrawn in place; elsewhere (logs, CI) only the final line."""

    redraw_seconds = 0.1

    def __init__(self, total, stream):
        self.total, self.stream = total, stream
        self.live = getattr(stream, "isatty", lambda: False)()
        self.started = self.last_draw = time.perf_counter()

    def update(self, received):
        now = time.perf_counter()
        if self.live and now - self.last_draw >= self.redraw_seconds:
            self.last_draw = now
            self.stream.write("\r" + self._line(received, now))
            self.stream.flush()

    def finish(self, received):
        line = self._line(received, time.perf_counter())
        self.stream.write(("\r" if self.live else "") + line + "\n")
        self.stream.flush()

    def _line(self, received, now):
        elapsed = now - self.started
        rate = f"{received / max(elapsed, 1e-9) / 1e6:.1f} MB/s"
        if not self.total:
            return f"{received} bytes {_format_time(elapsed)} {rate}"
        width = 20
        filled = min(width, width * received // self.total)
        bar = "\u2501" * filled + " " * (width - filled)
        return f"{received}/{self.total} {bar} {_format_time(elapsed)} {rate}"
