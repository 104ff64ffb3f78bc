"""Drivers that run the analyses at scale: chunk by chunk over one huge capture (``chunked``) and over
a Parquet dataset of many captures on Dask (``dataset``)."""

CHUNKED_FILE_BYTES = 2 << 30
"""Files larger than this are worth the chunked path (``open_capture`` and ``probekit report`` pick it for
them; here, without the drivers' imports, so that the report can decide before the analyses load)."""
