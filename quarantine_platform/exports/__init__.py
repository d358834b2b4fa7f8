"""`qp export`: tables Dagster materialized, written as csv, xlsx, parquet or json lines."""
