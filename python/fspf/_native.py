"""ctypes binding to libfspf (include/fspf.h). ctypes releases the GIL for every call, so
threads read in parallel; the library verifies every byte before it returns it."""
import ctypes
import ctypes.util
import os
import pathlib

API_VERSION = 1

OK, E_USAGE, E_NOT_FOUND, E_NOT_A_VOLUME, E_WRONG_KEY, E_INTEGRITY, E_IO, E_KEY_SOURCE, E_NOT_A_DIRECTORY, \
    E_NOT_A_FILE, E_INTERNAL = range(11)
TYPE_FILE, TYPE_DIRECTORY, TYPE_SYMLINK = 1, 2, 3
OPEN_NO_TAG_CHECK, OPEN_ACCEPT_V1 = 1, 2


class Error(ctypes.Structure):
    _fields_ = [("code", ctypes.c_int), ("message", ctypes.c_char * 1024)]


class Stat(ctypes.Structure):
    _fields_ = [("type", ctypes.c_uint32), ("mode", ctypes.c_uint32), ("size", ctypes.c_uint64),
                ("mtime_sec", ctypes.c_int64), ("mtime_nsec", ctypes.c_uint32), ("uid", ctypes.c_uint32),
                ("gid", ctypes.c_uint32), ("region", ctypes.c_uint32), ("inode", ctypes.c_uint64)]


def _candidates():
    """Where libfspf may be: $FSPF_LIBRARY, beside this package (a wheel), the system's search."""
    if os.environ.get("FSPF_LIBRARY"):
        yield os.environ["FSPF_LIBRARY"]
        return
    here = pathlib.Path(__file__).resolve().parent
    yield str(here / "libfspf.so")
    found = ctypes.util.find_library("fspf")
    if found:
        yield found
    yield "libfspf.so"


def _load():
    tried = []
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
            break
        except OSError as e:
            tried.append(f"{path}: {e}")
    else:
        raise ImportError("libfspf not found (set FSPF_LIBRARY to the path of libfspf.so; `make lib` builds it): "
                          + "; ".join(tried))
    P, S, VP = ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p
    E = ctypes.POINTER(Error)
    sigs = {
        "fspf_strerror": (P, [ctypes.c_int]),
        "fspf_version": (P, []),
        "fspf_volume_open": (ctypes.c_int, [P, P, S, P, ctypes.c_uint, ctypes.POINTER(VP), E]),
        "fspf_volume_open_options": (ctypes.c_int, [P, ctypes.POINTER(P), ctypes.POINTER(VP), E]),
        "fspf_volume_close": (None, [VP]),
        "fspf_volume_tag": (ctypes.c_int, [VP, ctypes.c_char_p, E]),
        "fspf_volume_format": (ctypes.c_int, [VP]),
        "fspf_stat_path": (ctypes.c_int, [VP, P, ctypes.POINTER(Stat), E]),
        "fspf_readlink": (ctypes.c_int, [VP, P, ctypes.c_char_p, S, ctypes.POINTER(S), E]),
        "fspf_list": (ctypes.c_int, [VP, P, ctypes.POINTER(VP), E]),
        "fspf_dir_count": (S, [VP]),
        "fspf_dir_name": (P, [VP, S]),
        "fspf_dir_stat": (ctypes.c_int, [VP, S, ctypes.POINTER(Stat), E]),
        "fspf_dir_close": (None, [VP]),
        "fspf_open": (ctypes.c_int, [VP, P, ctypes.POINTER(VP), E]),
        "fspf_file_size": (ctypes.c_uint64, [VP]),
        "fspf_pread": (ctypes.c_int, [VP, VP, S, ctypes.c_uint64, ctypes.POINTER(S), E]),
        "fspf_close": (None, [VP]),
    }
    for name, (restype, argtypes) in sigs.items():
        f = getattr(lib, name)
        f.restype, f.argtypes = restype, argtypes
    return lib


lib = _load()
