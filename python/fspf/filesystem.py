"""fsspec file system for fspf:// URLs: pyarrow, pandas, dask and anything else that takes an
fsspec file system read Parquet and CSV straight from a protected volume, in this process.

    fs = FSPFFileSystem(volume="/volumes/data", key_file="/keys/data.key", tag="…")
    pq.read_table("year=2024", filesystem=fs)
    pd.read_parquet("fspf:///year=2024", storage_options={"volume": "/volumes/data", "key_file": …, "tag": …})

The URL's path is the path inside the volume; the volume and its key source are storage
options (the key source options of fspf.Volume). Read-only: every write raises PermissionError.
"""
from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

from .volume import Volume


class FSPFFileSystem(AbstractFileSystem):
    protocol = "fspf"
    root_marker = "/"  # paths are absolute within the volume, as on a local file system
    # One instance per volume and key source: the volume's metadata is read and checked once.
    cachable = True

    def __init__(self, volume=None, key=None, tag=None, **options):
        storage = {k: v for k, v in options.items() if k not in ("skip_instance_cache", "use_listings_cache",
                                                                  "listings_expiry_time", "max_paths")}
        super().__init__(volume=volume, key=key, tag=tag, **options)
        if volume is None:
            raise ValueError("fspf: the storage option 'volume' (the volume directory or its metadata file) is required")
        self.volume = volume if isinstance(volume, Volume) else Volume(volume, key=key, tag=tag, **storage)

    @classmethod
    def _strip_protocol(cls, path):
        path = path[0] if isinstance(path, list) else path
        if path.startswith("fspf://"):
            path = path[len("fspf://"):]
        return "/" + path.strip("/")

    def unstrip_protocol(self, name):
        return "fspf://" + self._strip_protocol(name)

    @staticmethod
    def _info(path, s):
        kind = {"file": "file", "directory": "directory"}.get(s.type, "other")
        return {"name": path, "size": s.size, "type": kind, "mode": s.mode, "mtime": s.mtime, "uid": s.uid,
                "gid": s.gid, "region": s.region, "ino": s.inode, "islink": s.type == "symlink"}

    def info(self, path, **kwargs):
        path = self._strip_protocol(path)
        return self._info(path, self.volume.stat(path))

    def ls(self, path, detail=True, **kwargs):
        path = self._strip_protocol(path)
        if self.volume.stat(path).type != "directory":
            entries = [self.info(path)]
        else:
            entries = [self._info(f"{path.rstrip('/')}/{name}", s) for name, s in self.volume.scandir(path)]
        return entries if detail else [e["name"] for e in entries]

    def _open(self, path, mode="rb", block_size=None, autocommit=True, cache_options=None, **kwargs):
        if mode != "rb":
            raise PermissionError(f"fspf://{path}: volumes are read-only (mode {mode!r})")
        return FSPFBufferedFile(self, path, mode=mode, block_size=block_size, cache_options=cache_options, **kwargs)

    def cat_file(self, path, start=None, end=None, **kwargs):
        path = self._strip_protocol(path)
        with self.volume.open(path, buffering=0) as f:
            size = f.size
            start = 0 if start is None else (start + size if start < 0 else start)
            end = size if end is None else (end + size if end < 0 else end)
            return f.pread(max(0, min(end, size) - start), start)

    def _read_only(self, *args, **kwargs):
        raise PermissionError("fspf: volumes are read-only")

    mkdir = makedirs = rmdir = rm_file = _rm = rm = touch = cp_file = mv = put_file = pipe_file = _read_only


class FSPFBufferedFile(AbstractBufferedFile):
    """fsspec's buffered, read-ahead file over one libfspf handle (positioned reads)."""

    def __init__(self, fs, path, **kwargs):
        path = fs._strip_protocol(path)
        self._raw = fs.volume.open(path, buffering=0)
        super().__init__(fs, path, size=self._raw.size, **kwargs)

    def _fetch_range(self, start, end):
        return self._raw.pread(max(0, end - start), start)

    def close(self):
        super().close()
        self._raw.close()
