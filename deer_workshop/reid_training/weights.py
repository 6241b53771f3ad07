"""The trained backbone as files: a plain fp16 state_dict, split into parts and joined again.

The embedder loads a plain ResNet50 state_dict (any float dtype). Saved in fp16 it is about
47 MB, but files that come back from the remote GPU box are limited to 16 MiB each, so the bytes
are split into ``deer_reid_resnet50.pt.part0..N`` and the JSON written beside them records the
size and SHA-256; ``join_parts`` reassembles and checks them.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from pathlib import Path

import torch
from torch import nn

WEIGHTS_NAME = "deer_reid_resnet50.pt"
PART_BYTES = 15 * 1024 * 1024  # files coming back from the GPU box are limited to 16 MiB


def fp16_state_bytes(model: nn.Module) -> bytes:
    """Serialise the backbone as a plain fp16 state_dict (integer buffers unchanged)."""
    state = {
        k: (v.detach().half() if v.is_floating_point() else v.detach()).cpu()
        for k, v in model.state_dict().items()
    }
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def write_parts(
    data: bytes, out: Path, name: str = WEIGHTS_NAME, part_bytes: int = PART_BYTES
) -> dict:
    """Split ``data`` into ``name.part0..N`` under ``out``; return the manifest."""
    out.mkdir(parents=True, exist_ok=True)
    parts = []
    for i in range(0, max(1, math.ceil(len(data) / part_bytes))):
        part = out / f"{name}.part{i}"
        part.write_bytes(data[i * part_bytes : (i + 1) * part_bytes])
        parts.append(part.name)
    return {
        "name": name,
        "parts": parts,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def join_parts(src: Path, dest: Path) -> Path:
    """Join ``deer_reid_resnet50.pt.part*`` from ``src`` into ``dest`` and check the SHA-256.

    The JSON written next to the parts (``deer_reid_resnet50.json``) is copied next to ``dest``
    (it carries the matching threshold the pipeline reads).

    Raises:
        ValueError: parts are missing or the joined bytes do not match the recorded digest.
    """
    meta_path = src / Path(WEIGHTS_NAME).with_suffix(".json").name
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    manifest = meta["weights"]
    data = b"".join((src / name).read_bytes() for name in manifest["parts"])
    if len(data) != manifest["bytes"] or hashlib.sha256(data).hexdigest() != manifest["sha256"]:
        raise ValueError(f"joined weights do not match the manifest in {meta_path}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)
    dest.with_suffix(".json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return dest
