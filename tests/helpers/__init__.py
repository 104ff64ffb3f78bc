"""Helpers the tests share (not test modules): hand-made capture bytes, frame builders, the oracle
readers, table comparison and where the shared corpus is."""
