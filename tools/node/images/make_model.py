"""Writes the small model that tests/node's model image carries (strategies
oci and image): a few files of seeded bytes in nested directories, and
manifest.json beside the tree (name -> sha256) for the tests to check against.
Deterministic: the same arguments give the same bytes, so the image built from
it is cached by the hash of this file.

    python3 make_model.py OUT_DIR
"""

import hashlib
import json
import sys
from pathlib import Path

FILES = {
    "config.json": 2_000,
    "tokenizer.json": 150_000,
    "model-00001-of-00002.safetensors": 3 * 1024 * 1024,
    "model-00002-of-00002.safetensors": 1024 * 1024 + 17,
    "sub/dir/generation_config.json": 300,
}


def seeded_bytes(name: str, size: int) -> bytes:
    out = bytearray()
    block = hashlib.sha256(name.encode()).digest()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block * 128
    return bytes(out[:size])


def main(out: Path) -> None:
    tree = out / "models"
    manifest = {}
    for name, size in FILES.items():
        path = tree / name
        path.parent.mkdir(parents=True, exist_ok=True)
        data = seeded_bytes(name, size)
        path.write_bytes(data)
        manifest[name] = hashlib.sha256(data).hexdigest()
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
