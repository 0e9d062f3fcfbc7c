"""Fixtures: a plain tree (NYC-taxi Parquet partitions, a CSV, binary files around chunk
boundaries, a symlink), the volume `fspf encrypt` makes of it, and a tampered copy.
Needs FSPF_BIN (the fspf binary; its directory also holds libFSPFLibrary.so unless
FSPF_LIBRARY says where libfspf is)."""
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
FSPF = os.environ.get("FSPF_BIN", str(ROOT / ".build/debug/fspf"))
os.environ.setdefault("FSPF_LIBRARY", str(pathlib.Path(FSPF).parent / "libFSPFLibrary.so"))
sys.path.insert(0, str(ROOT / "python"))
# The fspf binaries' environment: in `make test-asan` this interpreter runs with the sanitizer's
# runtime preloaded (for the instrumented libfspf), which the instrumented tools bring themselves.
TOOL_ENV = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}


def fspf(*args, **kwargs):
    return subprocess.run([FSPF, *args], check=True, capture_output=True, text=True, env=TOOL_ENV, **kwargs)


class Corpus:
    def __init__(self, base):
        self.base = base
        self.plain = base / "plain"
        self.volume = base / "volume"
        self.key_file = base / "key.hex"
        self.tampered = base / "tampered"


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    c = Corpus(tmp_path_factory.mktemp("fspf"))
    subprocess.run([sys.executable, str(ROOT / "examples/nyc-taxi/generate.py"), str(c.plain / "trips"), "--rows", "30000"],
                   check=True, capture_output=True)
    (c.plain / "csv").mkdir()
    with open(c.plain / "csv/fares.csv", "w") as f:
        f.write("id,fare,zone\n")
        for i in range(20000):
            f.write(f"{i},{(i * 37) % 9000 / 100:.2f},zone-{i % 17}\n")
    rng = __import__("random").Random(7)
    (c.plain / "bin").mkdir()
    for size in (0, 1, 16383, 16384, 16385, 3_000_001):
        (c.plain / f"bin/b{size}").write_bytes(rng.randbytes(size))
    (c.plain / "link").symlink_to("csv/fares.csv")
    out = fspf("encrypt", str(c.plain), "--out", str(c.volume), "--key-out", str(c.key_file), "--format", "json")
    c.tag = json.loads(out.stdout)["full_tag"]
    c.short_tag = json.loads(out.stdout)["tag"]
    c.key = bytes.fromhex(c.key_file.read_text().strip())
    shutil.copytree(c.volume, c.tampered, symlinks=True)
    objects = sorted((p for p in (c.tampered / ".fspf-objects").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    big = objects[-1]  # the 3 MB file's object: alter a byte in the middle of its data
    data = bytearray(big.read_bytes())
    data[len(data) // 3] ^= 1
    big.write_bytes(bytes(data))
    return c
