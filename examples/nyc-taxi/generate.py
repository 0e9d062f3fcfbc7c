#!/usr/bin/env python3
"""Writes NYC yellow-taxi-like trip records as Parquet, partitioned like the open dataset
(year=YYYY/month=M/yellow_tripdata_YYYY-MM.parquet), with the TLC schema and realistic value
ranges. Deterministic for a given --seed and size, so two runs produce the same rows.

    generate.py OUT [--rows N | --size 2GiB] [--year 2024] [--months 1-3] [--seed 7]

Default: 200,000 rows over three months (5.5 MiB; the test uses 30,000).
"""
import argparse
import re
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA = pa.schema([
    ("VendorID", pa.int32()),
    ("tpep_pickup_datetime", pa.timestamp("us")),
    ("tpep_dropoff_datetime", pa.timestamp("us")),
    ("passenger_count", pa.int64()),
    ("trip_distance", pa.float64()),
    ("RatecodeID", pa.int64()),
    ("store_and_fwd_flag", pa.string()),
    ("PULocationID", pa.int32()),
    ("DOLocationID", pa.int32()),
    ("payment_type", pa.int64()),
    ("fare_amount", pa.float64()),
    ("extra", pa.float64()),
    ("mta_tax", pa.float64()),
    ("tip_amount", pa.float64()),
    ("tolls_amount", pa.float64()),
    ("improvement_surcharge", pa.float64()),
    ("total_amount", pa.float64()),
])
# Bytes per row in the written files (Snappy, 500,000-row groups), measured on this generator's output
# at 100 MiB; turns --size into a row count (small files compress a little worse).
BYTES_PER_ROW = 25
BATCH = 500_000


def choice(rng, values, weights, n):
    p = np.asarray(weights, dtype=float)
    return rng.choice(np.asarray(values), size=n, p=p / p.sum())


def batch(rng, n, year, month):
    start = np.datetime64(f"{year}-{month:02d}-01T00:00:00", "us")
    end = np.datetime64(f"{year + (month == 12)}-{month % 12 + 1:02d}-01T00:00:00", "us")
    span = int((end - start) / np.timedelta64(1, "us"))
    pickup = start + np.sort(rng.integers(0, span, n)).astype("timedelta64[us]")
    distance = np.clip(np.round(rng.lognormal(0.6, 0.9, n), 2), 0.0, 80.0)
    minutes = np.clip(distance * rng.normal(4.2, 1.2, n) + rng.exponential(3.0, n), 1.0, 240.0)
    dropoff = pickup + (minutes * 60e6).astype("timedelta64[us]")
    ratecode = choice(rng, [1, 2, 3, 4, 5, 99], [93.0, 3.5, 0.4, 0.3, 1.5, 1.3], n)
    payment = choice(rng, [1, 2, 3, 4], [78.0, 18.0, 2.0, 2.0], n)
    fare = np.where(ratecode == 2, 70.0, np.round(3.0 + 2.5 * distance + 0.7 * minutes, 2))
    extra = choice(rng, [0.0, 1.0, 2.5, 5.0], [35.0, 30.0, 25.0, 10.0], n)
    mta_tax = np.where(rng.random(n) < 0.98, 0.5, 0.0)
    tip = np.where(payment == 1, np.round(fare * rng.uniform(0.0, 0.3, n), 2), 0.0)
    tolls = np.where(rng.random(n) < 0.06, 6.94, 0.0)
    surcharge = np.full(n, 1.0)
    total = np.round(fare + extra + mta_tax + tip + tolls + surcharge, 2)
    passengers = choice(rng, [0, 1, 2, 3, 4, 5, 6], [1.5, 74.0, 14.0, 3.5, 2.0, 3.0, 2.0], n)
    # Like the real files: some records have no passenger count (and no rate code).
    missing = rng.random(n) < 0.02
    columns = [
        pa.array(choice(rng, [1, 2], [27.0, 73.0], n).astype(np.int32)),
        pa.array(pickup), pa.array(dropoff),
        pa.array(passengers, mask=missing),
        pa.array(distance),
        pa.array(ratecode, mask=missing),
        pa.array(np.where(rng.random(n) < 0.005, "Y", "N")),
        pa.array(rng.integers(1, 266, n).astype(np.int32)),
        pa.array(rng.integers(1, 266, n).astype(np.int32)),
        pa.array(payment),
        pa.array(fare), pa.array(extra), pa.array(mta_tax), pa.array(tip), pa.array(tolls),
        pa.array(surcharge), pa.array(total),
    ]
    return pa.RecordBatch.from_arrays(columns, schema=SCHEMA)


def parse_size(text):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMG]i?B?)?", text.strip(), re.IGNORECASE)
    if not m:
        raise argparse.ArgumentTypeError(f"{text}: expected a size such as 500MiB or 2GiB")
    unit = (m.group(2) or "").upper().rstrip("B").rstrip("I")
    return int(float(m.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[unit])


def parse_months(text):
    a, _, b = text.partition("-")
    months = list(range(int(a), int(b or a) + 1))
    if not months or months[0] < 1 or months[-1] > 12:
        raise argparse.ArgumentTypeError(f"{text}: expected months such as 1-3 within 1-12")
    return months


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--rows", type=int, default=200_000)
    size.add_argument("--size", type=parse_size, help="approximate total size on disk, e.g. 2GiB")
    ap.add_argument("--year", type=int, default=2024)
    ap.add_argument("--months", type=parse_months, default=parse_months("1-3"))
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rows = args.size // BYTES_PER_ROW if args.size else args.rows
    if rows <= 0:
        ap.error("--rows must be positive")
    if args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())):
        ap.error(f"{args.out}: exists and is not an empty directory")
    per_month = [rows // len(args.months) + (i < rows % len(args.months)) for i in range(len(args.months))]
    for month, n in zip(args.months, per_month):
        rng = np.random.default_rng([args.seed, args.year, month])
        path = args.out / f"year={args.year}" / f"month={month}" / f"yellow_tripdata_{args.year}-{month:02d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        with pq.ParquetWriter(path, SCHEMA, compression="snappy") as w:
            done = 0
            while done < n:
                k = min(BATCH, n - done)
                w.write_batch(batch(rng, k, args.year, month), row_group_size=k)
                done += k
    total = sum(p.stat().st_size for p in args.out.rglob("*.parquet"))
    print(f"wrote {rows} rows in {len(args.months)} files, {total / (1 << 20):.1f} MiB, under {args.out}")


if __name__ == "__main__":
    sys.exit(main())
