"""Where image bytes live when they are not in ``image_blobs``: the blob store (directly
uploaded bytes kept in a local directory or an S3-compatible bucket, ``blobs.py``) and
references submitted as ``image_uri`` (``refs.py``: the allow-list, the file root, reading).

The one home of object-storage I/O: the pipeline's decoder, the review page and the retention
run read and delete through these functions; boto3 is imported lazily (the ``s3`` extra)."""
