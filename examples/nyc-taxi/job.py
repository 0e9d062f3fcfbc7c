#!/usr/bin/env python3
"""The confidential Spark job: counts the NYC-taxi trips and aggregates them by passenger count
and payment type (trips, average fare), from Parquet data that may sit behind fspf-mount.

    spark-submit [--master …] job.py DATA [--result result.json] [--output DIR]

Prints the count, the table and timings; --result writes the exact result (without timings) as
JSON so that two runs can be compared byte for byte; --output writes the aggregates as Parquet
through Spark's output committer (e.g. into a read-write fspf-mount). Fares are summed in cents as integers, so
the result does not depend on how Spark splits and orders the work.
"""
import argparse
import json
import time

from pyspark.sql import SparkSession
from pyspark.sql import functions as F


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--result")
    ap.add_argument("--output")
    args = ap.parse_args()

    spark = SparkSession.builder.appName("fspf-nyc-taxi").getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    start = time.perf_counter()
    trips = spark.read.parquet(args.data)
    rows = trips.count()
    counted = time.perf_counter()
    aggregates = (trips.groupBy("passenger_count", "payment_type")
                  .agg(F.count(F.lit(1)).alias("trips"),
                       F.sum(F.round(F.col("fare_amount") * 100).cast("long")).alias("fare_cents"))
                  .orderBy(F.col("passenger_count").asc_nulls_first(), "payment_type"))
    groups = aggregates.collect()
    if args.output:
        aggregates.write.mode("overwrite").parquet(args.output)
    aggregated = time.perf_counter()

    table = [{"passenger_count": g["passenger_count"], "payment_type": g["payment_type"], "trips": g["trips"],
              "avg_fare": round(g["fare_cents"] / g["trips"] / 100, 4)} for g in groups]
    print(f"rows: {rows}")
    print("passengers payment    trips avg_fare")
    for r in table:
        p = "-" if r["passenger_count"] is None else r["passenger_count"]
        print(f"{p:>10} {r['payment_type']:7d} {r['trips']:8d} {r['avg_fare']:8.2f}")
    print(f"seconds: count {counted - start:.2f}, aggregate {aggregated - counted:.2f}, total {aggregated - start:.2f}")
    if args.result:
        with open(args.result, "w") as f:
            json.dump({"rows": rows, "groups": table}, f, indent=1, sort_keys=True)
            f.write("\n")
    spark.stop()


if __name__ == "__main__":
    main()
