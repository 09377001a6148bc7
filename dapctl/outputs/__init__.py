"""Outputs: where a collected job's data lands.

Module map: ``destination`` (the ``Destination`` / ``Load`` protocol and the
``open_destination`` factory), ``files`` (the local file destination), ``objects`` (objects
in a bucket: S3, GCS, Azure, through fsspec), ``memory`` (an in-memory destination, the
tests' second implementation), ``merge`` (joining parts into one text stream, record
counting, gzip), ``parts`` (what a part's download keeps: records counted, CSV/TSV bodies
deflated again), ``parquet`` (joining Parquet parts with pyarrow), ``tables`` (a job's parts
loaded into a database table; the config's ``Databases``) and ``records`` (which step record
of a table target counts: the row committed with its table, in its database).
"""
