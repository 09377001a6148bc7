"""Outputs: where a collected job's data lands.

Module map: ``destination`` (the ``Destination`` / ``Load`` protocol and the
``open_destination`` factory), ``files`` (the local file destination), ``objects`` (objects
in a bucket: S3, GCS, Azure, through fsspec), ``memory`` (an in-memory destination, the
tests' second implementation), ``merge`` (joining parts into one text stream, record
counting, gzip) and ``parquet`` (joining Parquet parts with pyarrow).
"""
