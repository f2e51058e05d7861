"""Read and write the safetensors file format without the `safetensors` package (an optional
dependency of this project).

The format: an 8-byte little-endian unsigned header length N, N bytes of a JSON header
{name: {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, "__metadata__": {str: str}}
(offsets relative to the end of the header, tensors packed in order without gaps), then the raw
little-endian tensor bytes, row-major. The header is padded with spaces to a multiple of 8 bytes,
as the reference writer does.
"""

from __future__ import annotations

import json
import struct
import sys

import torch

DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
_NAMES = {v: k for k, v in DTYPES.items()}


def _to_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().to("cpu").contiguous()
    if t.dtype not in _NAMES:
        raise ValueError(f"safetensors: dtype {t.dtype} is not supported")
    if t.numel() == 0:
        return b""
    raw = (
        t.reshape(-1).view(torch.uint8) if t.dtype != torch.bool else t.reshape(-1).to(torch.uint8)
    )
    if sys.byteorder != "little" and t.element_size() > 1:
        raise RuntimeError("safetensors: big-endian hosts are not supported")
    return raw.numpy().tobytes()


def save_file(
    tensors: dict[str, torch.Tensor], path, metadata: dict[str, str] | None = None
) -> None:
    """Writes `tensors` (name -> tensor) to `path`; metadata values must be strings."""
    header: dict = {}
    if metadata:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise ValueError("safetensors: metadata must map str -> str")
        header["__metadata__"] = dict(metadata)
    blobs, pos = [], 0
    for name in sorted(
        tensors
    ):  # the reference writer orders by dtype then name; any order is valid
        t = tensors[name]
        b = _to_bytes(t)
        header[name] = {
            "dtype": _NAMES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [pos, pos + len(b)],
        }
        blobs.append(b)
        pos += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def load_file(path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) read from a safetensors file."""
    with open(path, "rb") as f:
        data = f.read()
    return loads(data)


def loads(data: bytes) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if len(data) < 8:
        raise ValueError("safetensors: file shorter than its 8-byte header length")
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        raise ValueError(f"safetensors: header length {n} past the end of the file")
    header = json.loads(data[8 : 8 + n].decode())
    body = memoryview(data)[8 + n :]
    meta = header.pop("__metadata__", {}) or {}
    out = {}
    for name, info in header.items():
        dtype = DTYPES.get(info["dtype"])
        if dtype is None:
            raise ValueError(f"safetensors: tensor {name!r} has unsupported dtype {info['dtype']}")
        begin, end = info["data_offsets"]
        shape = list(info["shape"])
        numel = 1
        for s in shape:
            numel *= s
        itemsize = torch.empty((), dtype=dtype).element_size()
        if not 0 <= begin <= end <= len(body) or end - begin != numel * itemsize:
            raise ValueError(
                f"safetensors: tensor {name!r}: offsets {begin}..{end} do not hold "
                f"{shape} {info['dtype']}"
            )
        raw = (
            torch.frombuffer(bytearray(body[begin:end]), dtype=torch.uint8)
            if end > begin
            else torch.empty(0, dtype=torch.uint8)
        )
        if dtype == torch.bool:
            t = raw.to(torch.bool)
        else:
            t = raw.view(dtype)
        out[name] = t.reshape(shape)
    return out, meta
