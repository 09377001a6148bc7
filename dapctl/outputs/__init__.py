"""Outputs: where a collected job's data lands.

Module map: ``destination`` (the ``Destination`` / ``Load`` protocol and the
``open_destination`` factory), ``files`` (the local file destination), ``memory`` (an
in-memory destination, the tests' second implementation), ``merge`` (joining parts into one
text stream, record counting, gzip) and ``parquet`` (joining Parquet parts with pyarrow).
"""
