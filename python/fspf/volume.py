"""Volumes and files read in this process through libfspf: nothing is decrypted outside it."""
import ctypes
import io
import os
import stat as statmod
from typing import NamedTuple

from . import _native as n


class FSPFError(OSError):
    """A libfspf failure; `code` is the fspf_status, the message names the path and the cause."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


class IntegrityError(FSPFError):
    """Tampered, truncated, swapped, or not the version the tag pins."""


class WrongKeyError(FSPFError):
    """The key does not open this volume."""


class KeySourceError(FSPFError):
    """The key source could not deliver (file, variable, agent, key server)."""


class NotAVolumeError(FSPFError):
    """Not an FSPF volume, an unsupported format, or format 1 under a tag."""


class VolumeNotFoundError(FSPFError, FileNotFoundError):
    pass


class VolumeNotADirectoryError(FSPFError, NotADirectoryError):
    pass


class VolumeIsADirectoryError(FSPFError, IsADirectoryError):
    """fspf_open on a directory or a symbolic link."""


_classes = {n.E_NOT_FOUND: VolumeNotFoundError, n.E_NOT_A_VOLUME: NotAVolumeError, n.E_WRONG_KEY: WrongKeyError,
            n.E_INTEGRITY: IntegrityError, n.E_KEY_SOURCE: KeySourceError, n.E_NOT_A_DIRECTORY: VolumeNotADirectoryError,
            n.E_NOT_A_FILE: VolumeIsADirectoryError, n.E_USAGE: FSPFError}


def _check(status, err):
    if status != n.OK:
        message = err.message.decode("utf-8", "replace") or n.lib.fspf_strerror(status).decode()
        cls = _classes.get(status, FSPFError)
        if cls is FSPFError and status == n.E_USAGE:
            raise ValueError(message)
        raise cls(status, message)


def _path(p):
    return os.fsencode(p)


class Stat(NamedTuple):
    type: str          # "file", "directory" or "symlink"
    mode: int          # st_mode: type and permission bits
    size: int
    mtime: float
    mtime_ns: int
    uid: int
    gid: int
    region: str        # "encrypted", "authenticated", "not-protected" or "" (directories, links)
    inode: int

    @classmethod
    def _from(cls, s):
        kind = {n.TYPE_FILE: "file", n.TYPE_DIRECTORY: "directory", n.TYPE_SYMLINK: "symlink"}[s.type]
        fmt = {n.TYPE_FILE: statmod.S_IFREG, n.TYPE_DIRECTORY: statmod.S_IFDIR, n.TYPE_SYMLINK: statmod.S_IFLNK}[s.type]
        region = ["", "encrypted", "authenticated", "not-protected"][s.region]
        ns = s.mtime_sec * 1_000_000_000 + s.mtime_nsec
        return cls(kind, fmt | s.mode, s.size, ns / 1e9, ns, s.uid, s.gid, region, s.inode)


class Volume:
    """An open protected volume.

    Volume(path, key=bytes32, tag=hex) opens with a key already in memory; without `key`, the
    library reads it itself from a key source given by fspf-mount's option names with
    underscores: key_file=, key_env= (removed from the environment once read), key_url=, or
    key_broker= with evidence= ("sgx", "maa", "simulated"), broker_identity= and broker_ca=, volume_name=,
    attester_key=, ... The tag pins the exact volume version (full or short hex); it may come
    from the key resource (a key server reply carries it). no_tag_check=True opens without
    rollback protection.
    """

    def __init__(self, path, key=None, tag=None, *, no_tag_check=False, accept_v1=False, **options):
        self._handle = ctypes.c_void_p()
        self.path = os.fspath(path)
        err = n.Error()
        if key is not None:
            if options:
                raise ValueError("give either key or a key source option, not both: " + ", ".join(options))
            key = bytes(key)
            flags = (n.OPEN_NO_TAG_CHECK if no_tag_check else 0) | (n.OPEN_ACCEPT_V1 if accept_v1 else 0)
            status = n.lib.fspf_volume_open(_path(path), key, len(key), tag.encode() if tag else None, flags,
                                            ctypes.byref(self._handle), ctypes.byref(err))
        else:
            items = dict((k.replace("_", "-"), v) for k, v in options.items() if v is not None)
            if tag:
                items["tag"] = tag
            if no_tag_check:
                items["no-tag-check"] = "true"
            if accept_v1:
                items["accept-v1"] = "true"
            encoded = [f"{k}={v}".encode() for k, v in items.items()]
            array = (ctypes.c_char_p * (len(encoded) + 1))(*encoded, None)
            status = n.lib.fspf_volume_open_options(_path(path), array, ctypes.byref(self._handle), ctypes.byref(err))
            if status == n.OK and "key-env" in items:
                # The library removed the variable from the C environment; os.environ keeps a copy.
                os.environ.pop(items["key-env"], None)
        _check(status, err)

    def close(self):
        if self._handle:
            n.lib.fspf_volume_close(self._handle)
            self._handle = ctypes.c_void_p()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # at interpreter shutdown the binding may be gone already
            pass

    def _live(self):
        if not self._handle:
            raise ValueError("volume is closed")
        return self._handle

    @property
    def tag(self):
        """The full tag, 64 hex digits."""
        out = ctypes.create_string_buffer(65)
        err = n.Error()
        _check(n.lib.fspf_volume_tag(self._live(), out, ctypes.byref(err)), err)
        return out.value.decode()

    @property
    def format(self):
        return n.lib.fspf_volume_format(self._live())

    def stat(self, path):
        s, err = n.Stat(), n.Error()
        _check(n.lib.fspf_stat_path(self._live(), _path(path), ctypes.byref(s), ctypes.byref(err)), err)
        return Stat._from(s)

    def scandir(self, path=""):
        """[(name, Stat)] of a directory, in name order."""
        d, err = ctypes.c_void_p(), n.Error()
        _check(n.lib.fspf_list(self._live(), _path(path), ctypes.byref(d), ctypes.byref(err)), err)
        try:
            out = []
            s = n.Stat()
            for i in range(n.lib.fspf_dir_count(d)):
                _check(n.lib.fspf_dir_stat(d, i, ctypes.byref(s), ctypes.byref(err)), err)
                out.append((os.fsdecode(n.lib.fspf_dir_name(d, i)), Stat._from(s)))
            return out
        finally:
            n.lib.fspf_dir_close(d)

    def listdir(self, path=""):
        return [name for name, _ in self.scandir(path)]

    def readlink(self, path):
        size, err = ctypes.c_size_t(), n.Error()
        buf = ctypes.create_string_buffer(4096)
        status = n.lib.fspf_readlink(self._live(), _path(path), buf, len(buf), ctypes.byref(size), ctypes.byref(err))
        if status == n.E_USAGE and size.value >= len(buf):
            buf = ctypes.create_string_buffer(size.value + 1)
            status = n.lib.fspf_readlink(self._live(), _path(path), buf, len(buf), ctypes.byref(size), ctypes.byref(err))
        _check(status, err)
        return os.fsdecode(buf.raw[:size.value])

    def open(self, path, buffering=1 << 20):
        """A read-only binary file; buffered (io.BufferedReader) unless buffering=0."""
        raw = File(self, path)
        return raw if buffering == 0 else io.BufferedReader(raw, buffer_size=buffering)

    def read_bytes(self, path):
        with File(self, path) as f:
            return f.pread(f.size, 0)

    def walk(self, top=""):
        """Like os.walk: (directory, [subdirectories], [other names]), top down."""
        entries = self.scandir(top)
        dirs = [name for name, s in entries if s.type == "directory"]
        yield top, dirs, [name for name, s in entries if s.type != "directory"]
        for d in dirs:
            yield from self.walk(f"{top}/{d}" if top else d)


class File(io.RawIOBase):
    """A file of a volume: positioned reads (pread, thread-safe) and a file position for read()."""

    def __init__(self, volume, path):
        super().__init__()
        self._handle = ctypes.c_void_p()
        self.name = os.fsdecode(path)
        err = n.Error()
        _check(n.lib.fspf_open(volume._live(), _path(path), ctypes.byref(self._handle), ctypes.byref(err)), err)
        self.size = n.lib.fspf_file_size(self._handle)
        self._pos = 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def close(self):
        if self._handle:
            n.lib.fspf_close(self._handle)
            self._handle = ctypes.c_void_p()
        super().close()

    def _live(self):
        if not self._handle:
            raise ValueError("I/O operation on closed file")
        return self._handle

    def readinto_at(self, buffer, offset):
        """Fills `buffer` (any writable buffer) from `offset`; returns the byte count."""
        view = memoryview(buffer).cast("B")
        if len(view) == 0:
            return 0
        target = (ctypes.c_char * len(view)).from_buffer(view)
        got, err = ctypes.c_size_t(), n.Error()
        _check(n.lib.fspf_pread(self._live(), target, len(view), offset, ctypes.byref(got), ctypes.byref(err)), err)
        return got.value

    def pread(self, count, offset):
        buf = bytearray(max(0, min(count, self.size - offset)))
        got = self.readinto_at(buf, offset)
        del buf[got:]
        return bytes(buf)

    def readinto(self, buffer):
        got = self.readinto_at(buffer, self._pos)
        self._pos += got
        return got

    def readall(self):
        data = self.pread(max(0, self.size - self._pos), self._pos)
        self._pos += len(data)
        return data

    def seek(self, offset, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise OSError(22, "negative seek position")
        self._pos = base + offset
        return self._pos

    def tell(self):
        return self._pos
