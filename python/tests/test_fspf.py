"""The Python package against real volumes: the Volume API, every error class, threads, the
fsspec file system under pyarrow and pandas, and key sources (file, environment, the key server)."""
import concurrent.futures
import json
import os
import random
import subprocess
import sys

import fsspec
import pandas as pd
import pyarrow.parquet as pq
import pytest

import fspf
from conftest import FSPF, ROOT, TOOL_ENV, fspf as run_fspf


def plain_files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.is_symlink())


def test_tree_and_bytes_match_the_plain_files(corpus):
    with fspf.Volume(corpus.volume, corpus.key, corpus.tag) as v:
        assert v.tag == corpus.tag and v.format == 2
        seen = []
        for top, dirs, others in v.walk():
            for name in others:
                path = f"{top}/{name}" if top else name
                seen.append(path)
                plain = corpus.plain / path
                s = v.stat(path)
                if plain.is_symlink():
                    assert s.type == "symlink" and v.readlink(path) == os.readlink(plain)
                    continue
                assert s.type == "file" and s.size == plain.stat().st_size and s.region == "encrypted"
                assert s.mode == plain.stat().st_mode and s.mtime_ns == plain.stat().st_mtime_ns
                assert v.read_bytes(path) == plain.read_bytes()
        assert sorted(seen) == plain_files(corpus.plain)


def test_file_reads_seeks_and_preads(corpus):
    data = (corpus.plain / "bin/b3000001").read_bytes()
    with fspf.Volume(corpus.volume, corpus.key, corpus.short_tag) as v:
        with v.open("bin/b3000001", buffering=0) as f:
            assert f.size == len(data)
            rng = random.Random(1)
            for _ in range(200):
                off, n = rng.randrange(len(data)), rng.randrange(1, 200_000)
                assert f.pread(n, off) == data[off:off + n]
            assert f.pread(10, len(data)) == b"" and f.pread(10, len(data) + 99) == b""
            f.seek(-5, os.SEEK_END)
            assert f.read() == data[-5:]
            f.seek(1000)
            buf = bytearray(70_000)
            assert f.readinto(buf) == 70_000 and bytes(buf) == data[1000:71_000] and f.tell() == 71_000
        with v.open("bin/b3000001") as f:  # buffered
            assert f.read(100) == data[:100] and f.read() == data[100:]


def test_threads_share_one_handle(corpus):
    data = (corpus.plain / "bin/b3000001").read_bytes()
    with fspf.Volume(corpus.volume, corpus.key, corpus.tag) as v, v.open("bin/b3000001", buffering=0) as f:
        def work(seed):
            rng = random.Random(seed)
            for _ in range(100):
                off, n = rng.randrange(len(data)), rng.randrange(1, 1 << 20)
                if f.pread(n, off) != data[off:off + n]:
                    return False
            return True
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            assert all(pool.map(work, range(8)))


def test_errors_are_typed_and_name_the_cause(corpus):
    wrong = bytes([corpus.key[0] ^ 1]) + corpus.key[1:]
    with pytest.raises(fspf.WrongKeyError, match="wrong key"):
        fspf.Volume(corpus.volume, wrong, corpus.tag)
    with pytest.raises(fspf.IntegrityError, match="not the expected"):
        fspf.Volume(corpus.volume, corpus.key, "0" * 64)
    with pytest.raises(ValueError, match="expected tag is needed"):
        fspf.Volume(corpus.volume, corpus.key)
    with pytest.raises(ValueError, match="not a volume tag"):
        fspf.Volume(corpus.volume, corpus.key, "abc")
    with pytest.raises(FileNotFoundError):
        fspf.Volume(corpus.base / "missing", corpus.key, corpus.tag)
    with pytest.raises(fspf.NotAVolumeError):
        fspf.Volume("/etc/passwd", corpus.key, corpus.tag)
    with pytest.raises(fspf.KeySourceError, match="FSPF_UNSET_VARIABLE"):
        fspf.Volume(corpus.volume, key_env="FSPF_UNSET_VARIABLE", tag=corpus.tag)
    with fspf.Volume(corpus.volume, corpus.key, corpus.tag) as v:
        with pytest.raises(FileNotFoundError, match="no/such"):
            v.stat("no/such")
        with pytest.raises(NotADirectoryError):
            v.listdir("csv/fares.csv")
        with pytest.raises(IsADirectoryError):
            v.open("csv")
        with pytest.raises(ValueError, match=r"'\.\.'"):
            v.stat("../etc/passwd")
    # Tampered data: the read fails with the file and chunk named, no byte of it is returned.
    with fspf.Volume(corpus.tampered, corpus.key, corpus.tag) as v:
        assert v.read_bytes("bin/b16385") == (corpus.plain / "bin/b16385").read_bytes()
        with pytest.raises(fspf.IntegrityError, match=r"bin/b3000001: integrity check failed: chunk \d+"):
            v.read_bytes("bin/b3000001")
        with v.open("bin/b3000001", buffering=0) as f:
            buf = bytearray(b"\xaa" * f.size)
            with pytest.raises(fspf.IntegrityError):
                f.readinto(buf)
            assert buf.count(0) == len(buf)


def test_key_sources_file_and_environment(corpus):
    with fspf.Volume(corpus.volume, key_file=corpus.key_file, tag=corpus.tag) as v:
        assert v.listdir("") == ["bin", "csv", "link", "trips"]
    os.environ["FSPF_TEST_KEY"] = corpus.key.hex()
    with fspf.Volume(corpus.volume, key_env="FSPF_TEST_KEY", tag=corpus.tag) as v:
        assert v.tag == corpus.tag
    assert "FSPF_TEST_KEY" not in os.environ  # removed once read
    with pytest.raises(ValueError, match="either key or a key source"):
        fspf.Volume(corpus.volume, corpus.key, corpus.tag, key_file=corpus.key_file)


def test_key_server_release_with_simulated_evidence(corpus, tmp_path):
    """The key and the tag from `fspf keyserver` after (simulated) attestation of this process:
    the policy names the SHA-256 of the running interpreter, as MRENCLAVE names an enclave."""
    run_fspf("keyserver", "init", "--store", str(tmp_path / "ks"))
    public = run_fspf("attester", "init", "--out", str(tmp_path / "att.key")).stdout.strip()
    exe = subprocess.run(["sha256sum", os.path.realpath(sys.executable)], capture_output=True, text=True, check=True)
    measurement = exe.stdout.split()[0]
    (tmp_path / "policy.json").write_text(json.dumps(
        {"mrenclave": [measurement], "simulated": True, "simulated_attesters": [public]}))
    run_fspf("keyserver", "register", "--store", str(tmp_path / "ks"), "--volume-name", "data", "--key-file", str(corpus.key_file),
             "--tag", corpus.tag, "--policy", str(tmp_path / "policy.json"))
    server = subprocess.Popen([FSPF, "keyserver", "serve", "--store", str(tmp_path / "ks"), "--listen", "127.0.0.1:0"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=TOOL_ENV)
    try:
        url = None
        for line in server.stdout:
            if "https://" in line:
                url = line[line.index("https://"):].split()[0]
                break
        assert url, server.stderr.read()
        options = dict(key_broker=url, evidence="simulated", attester_key=tmp_path / "att.key", volume_name="data",
                       broker_ca=tmp_path / "ks/tls/cert.pem", broker_identity=tmp_path / "ks/identity.pub")
        with fspf.Volume(corpus.volume, **options) as v:  # the tag comes with the key
            assert v.tag == corpus.tag
            assert v.read_bytes("csv/fares.csv") == (corpus.plain / "csv/fares.csv").read_bytes()
        # A process the policy does not name gets nothing.
        with pytest.raises(fspf.KeySourceError):
            fspf.Volume(corpus.volume, simulated_mrenclave="00" * 32, **options)
    finally:
        server.terminate()
        server.wait(10)


def storage(corpus):
    return {"volume": str(corpus.volume), "key_file": str(corpus.key_file), "tag": corpus.tag}


def test_fsspec_listing_and_reading(corpus):
    fs = fsspec.filesystem("fspf", **storage(corpus))
    assert fs.ls("/", detail=False) == ["/bin", "/csv", "/link", "/trips"]
    found = fs.find("fspf:///trips")
    assert found == sorted("/" + p for p in plain_files(corpus.plain) if p.startswith("trips/"))
    assert fs.info("/csv/fares.csv")["size"] == (corpus.plain / "csv/fares.csv").stat().st_size
    assert fs.isdir("/trips/year=2024") and fs.isfile("/bin/b1") and not fs.exists("/nope")
    assert fs.glob("/trips/year=2024/month=*/*.parquet") == [p for p in found if p.endswith(".parquet")]
    data = (corpus.plain / "bin/b3000001").read_bytes()
    assert fs.cat_file("/bin/b3000001", 100, 200) == data[100:200]
    assert fs.cat_file("/bin/b3000001", -10) == data[-10:]
    with fs.open("fspf:///bin/b3000001") as f:
        f.seek(2_999_000)
        assert f.read() == data[2_999_000:]
    with fsspec.open("fspf:///csv/fares.csv", "rt", **storage(corpus)) as f:
        assert f.readline() == "id,fare,zone\n"
    for write in (lambda: fs.open("/new", "wb"), lambda: fs.mkdir("/d"), lambda: fs.rm("/bin/b1"), lambda: fs.touch("/x")):
        with pytest.raises(PermissionError, match="read-only"):
            write()


def test_pyarrow_and_pandas_read_parquet_and_csv(corpus):
    fs = fsspec.filesystem("fspf", **storage(corpus))
    expected = pq.read_table(corpus.plain / "trips").sort_by([("tpep_pickup_datetime", "ascending")])
    # Partition discovery through fsspec: year= and month= become columns.
    table = pq.read_table("/trips", filesystem=fs).sort_by([("tpep_pickup_datetime", "ascending")])
    assert table.num_rows == 30000 and table.equals(expected)
    assert set(table.column("month").to_pylist()) == {1, 2, 3}
    frame = pd.read_parquet("fspf:///trips/year=2024/month=2", storage_options=storage(corpus))
    assert frame.equals(pd.read_parquet(corpus.plain / "trips/year=2024/month=2"))
    csv = pd.read_csv("fspf:///csv/fares.csv", storage_options=storage(corpus))
    assert csv.equals(pd.read_csv(corpus.plain / "csv/fares.csv"))


def test_notebook_script_gives_the_plain_result(corpus, tmp_path):
    """examples/nyc-taxi/notebook.py: pyarrow through fsspec in-process, identical to the plain run."""
    script = str(ROOT / "examples/nyc-taxi/notebook.py")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"))
    subprocess.run([sys.executable, script, str(corpus.plain / "trips"), "--result", str(tmp_path / "plain.json")],
                   check=True, capture_output=True, env=env)
    out = subprocess.run([sys.executable, script, "/trips", "--volume", str(corpus.volume), "--key-file", str(corpus.key_file),
                          "--tag", corpus.tag, "--result", str(tmp_path / "volume.json")], check=True, capture_output=True,
                         text=True, env=env)
    assert out.stdout.startswith("rows: 30000\n")
    assert (tmp_path / "volume.json").read_bytes() == (tmp_path / "plain.json").read_bytes()
