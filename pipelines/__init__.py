"""Dataset preparation: any talking-face corpus to Parquet shards, on Dask, resumable."""
