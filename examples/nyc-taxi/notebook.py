#!/usr/bin/env python3
"""The NYC-taxi job's aggregation as a notebook would do it: pyarrow's dataset reader through
fsspec, in this process. With --volume the data is read from a protected volume by libfspf
(fspf:// URLs; nothing is decrypted outside this process, no mount); without, from plain files.

    notebook.py DATA [--volume VOL (--key-file F | --key-env NAME | --key-broker URL …) [--tag T]]
                     [--result result.json]

DATA is a directory of year=/month= partitions (a path inside the volume with --volume).
--result writes exactly what job.py --result writes, so the two can be compared byte for byte.
"""
import argparse
import json
import os
import sys
import time

import pyarrow.compute as pc
import pyarrow.dataset as ds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--volume")
    for option in ("key-file", "key-env", "key-broker", "evidence", "broker-ca", "broker-identity", "volume-name", "attester-key",
                   "simulated-mrenclave", "tag"):
        ap.add_argument("--" + option)
    ap.add_argument("--result")
    args = ap.parse_args()

    filesystem = None
    if args.volume:
        import fsspec

        import fspf  # noqa: F401  (registers fspf:// with fsspec)

        keys = {k: v for k, v in vars(args).items() if k not in ("data", "volume", "result") and v is not None}
        filesystem = fsspec.filesystem("fspf", volume=args.volume, **keys)
        args.data = filesystem._strip_protocol(args.data)  # absolute within the volume, as pyarrow wants
    start = time.perf_counter()
    trips = ds.dataset(args.data, filesystem=filesystem, format="parquet", partitioning="hive")
    table = trips.to_table(columns=["passenger_count", "payment_type", "fare_amount"])
    table = table.append_column("fare_cents", pc.cast(pc.round(pc.multiply(table["fare_amount"], 100),
                                                               round_mode="half_up"), "int64"))
    grouped = table.group_by(["passenger_count", "payment_type"]).aggregate(
        [("payment_type", "count", pc.CountOptions(mode="all")), ("fare_cents", "sum")]).to_pylist()
    grouped.sort(key=lambda g: (g["passenger_count"] is not None, g["passenger_count"] or 0, g["payment_type"]))
    groups = [{"passenger_count": g["passenger_count"], "payment_type": g["payment_type"], "trips": g["payment_type_count"],
               "avg_fare": round(g["fare_cents_sum"] / g["payment_type_count"] / 100, 4)} for g in grouped]
    print(f"rows: {table.num_rows}")
    print(f"files: {len(trips.files)}")
    print(f"seconds: {time.perf_counter() - start:.2f}")
    if args.result:
        with open(args.result, "w") as f:
            json.dump({"rows": table.num_rows, "groups": groups}, f, indent=1, sort_keys=True)
            f.write("\n")


if __name__ == "__main__":
    main()
    # pyarrow's threads may still hold scanner work that calls into the Python file system; if the
    # interpreter finalizes first, the process aborts now and then ("terminate called without an
    # active exception", apache/arrow#34314, open). The result is written and closed by now, so
    # the script leaves without finalizing, as that issue suggests.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
