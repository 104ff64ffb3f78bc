"""Drivers that run the analyses at scale: chunk by chunk over one huge capture (``chunked``) and over
a Parquet dataset of many captures on Dask (``dataset``)."""
