"""The boto3 peer of the throttled benchmark: download every object under a
prefix (or one key) with s3transfer's TransferManager, the engine behind
`aws s3 cp` and boto3's download_file, then fsync each file (model-cache
fsyncs before its marker, so the comparison is durable against durable).

    python bench/download_boto3_peer.py ENDPOINT BUCKET KEY_OR_PREFIX OUTDIR --jobs 16
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import boto3
import botocore.config
from boto3.s3.transfer import TransferConfig
from s3transfer.manager import TransferManager


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("endpoint")
    ap.add_argument("bucket")
    ap.add_argument("key")
    ap.add_argument("out")
    ap.add_argument("--jobs", type=int, default=16)
    ap.add_argument("--chunk-mib", type=int, default=16)
    a = ap.parse_args()
    client = boto3.client("s3", endpoint_url=a.endpoint, region_name="us-east-1", aws_access_key_id="bench",
                          aws_secret_access_key="bench",
                          config=botocore.config.Config(max_pool_connections=a.jobs, s3={"addressing_style": "path"}))
    out = Path(a.out)
    resp = client.list_objects_v2(Bucket=a.bucket, Prefix=a.key.rstrip("/") + "/")
    keys = [o["Key"] for o in resp.get("Contents", [])]
    base = a.key.rstrip("/") + "/"
    if not keys:
        keys, base = [a.key], a.key.rsplit("/", 1)[0] + "/" if "/" in a.key else ""
    cfg = TransferConfig(max_concurrency=a.jobs, multipart_chunksize=a.chunk_mib << 20,
                         multipart_threshold=a.chunk_mib << 20)
    targets = []
    with TransferManager(client, cfg) as tm:
        futures = []
        for k in keys:
            dest = out / k[len(base):]
            dest.parent.mkdir(parents=True, exist_ok=True)
            targets.append(dest)
            futures.append(tm.download(a.bucket, k, str(dest)))
        for f in futures:
            f.result()
    for t in targets:
        fd = os.open(t, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
