"""Read FSPF protected volumes inside this process (libfspf): every byte verified, nothing
decrypted outside the process's memory (an SGX enclave's under Gramine or Occlum).

    import fspf
    with fspf.Volume("/volumes/data", key_file="/keys/data.key", tag="…") as v:
        v.listdir("year=2024")
        v.read_bytes("year=2024/month=1/part-0.parquet")

fspf:// URLs work in pyarrow, pandas and anything else that takes an fsspec file system
(fspf.FSPFFileSystem, registered with fsspec on import and through the package's entry point).
"""
from ._native import lib as _lib
from .volume import (File, FSPFError, IntegrityError, KeySourceError, NotAVolumeError, Stat, Volume,
                     VolumeIsADirectoryError, VolumeNotADirectoryError, VolumeNotFoundError, WrongKeyError)

__version__ = _lib.fspf_version().decode()

try:
    import fsspec

    from .filesystem import FSPFFileSystem

    fsspec.register_implementation("fspf", FSPFFileSystem, clobber=True)
except ImportError:  # fsspec is optional: Volume works without it
    pass

__all__ = ["Volume", "File", "Stat", "FSPFError", "IntegrityError", "WrongKeyError", "KeySourceError", "NotAVolumeError",
           "VolumeNotFoundError", "VolumeNotADirectoryError", "VolumeIsADirectoryError", "FSPFFileSystem"]
