"""GGUF's quantized blocks byte for byte: what llama.cpp stores, checked against the ``gguf`` package.

Notebook 05's third step, after int8 and int4 groups (``lmguide.quantize``):

- Q8_0: blocks of 32 weights, a float16 scale ``d = max|x| / 127`` and 32 int8 codes (34 bytes).
- Q4_1: blocks of 32 weights, a float16 scale and minimum and 16 bytes of 4-bit codes (20 bytes),
  the same rule as ``quantize.quantize_int4`` with groups of 32 (``quantize.q4_1_codes``).
- ``gguf_tensors`` / ``gguf_tensor``: what a GGUF file holds, and one tensor's raw blocks.

Named ``gguf_blocks`` rather than ``gguf`` so that it never shadows the ``gguf`` package.
"""
from __future__ import annotations

from pathlib import Path

import torch

from lmguide.quantize import q4_1_codes

GGUF_BLOCK = 32  # weights per Q8_0 / Q4_1 block


def _round_half_away(x: torch.Tensor) -> torch.Tensor:
    """C's roundf (ties away from zero), which llama.cpp uses; torch.round sends ties to even."""
    return torch.sign(x) * torch.floor(x.abs() + 0.5)


def _blocks(x: torch.Tensor) -> torch.Tensor:
    x = torch.as_tensor(x).float().flatten()
    if x.numel() % GGUF_BLOCK:
        raise ValueError(f"GGUF blocks hold {GGUF_BLOCK} weights; {x.numel()} is not a multiple of {GGUF_BLOCK}")
    return x.reshape(-1, GGUF_BLOCK)


def _f16_bytes(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.float16).contiguous().view(torch.uint8).reshape(-1, 2)


def q8_0_quantize(x: torch.Tensor) -> torch.Tensor:
    """GGUF Q8_0 bytes, one row of 34 per block: float16 ``d = max|x| / 127``, then 32 int8 codes."""
    blocks = _blocks(x)                                                # (n, 32)
    d = blocks.abs().amax(dim=1, keepdim=True) / 127
    inv = torch.where(d == 0, torch.zeros_like(d), 1 / d)
    q = _round_half_away(blocks * inv).to(torch.int8)
    return torch.cat([_f16_bytes(d), q.view(torch.uint8)], dim=1)     # (n, 2 + 32)


def q8_0_dequantize(raw: torch.Tensor) -> torch.Tensor:
    """Q8_0 bytes ``(n, 34)`` -> float32 ``(n, 32)``: ``d * q``."""
    d = raw[:, :2].contiguous().view(torch.float16).float()           # (n, 1)
    q = raw[:, 2:].contiguous().view(torch.int8).float()              # (n, 32)
    return d * q


def q4_1_quantize(x: torch.Tensor) -> torch.Tensor:
    """GGUF Q4_1 bytes, one row of 20 per block: float16 ``d``, float16 ``m``, 16 bytes of codes.

    llama.cpp packs code j in the low nibble of byte j and code j+16 in the high nibble
    (not neighbours, as ``pack_int4`` does).
    """
    d, m, q = q4_1_codes(_blocks(x))
    packed = q[:, :16] | (q[:, 16:] << 4)                             # (n, 16)
    return torch.cat([_f16_bytes(d), _f16_bytes(m), packed], dim=1)   # (n, 2 + 2 + 16)


def q4_1_dequantize(raw: torch.Tensor) -> torch.Tensor:
    """Q4_1 bytes ``(n, 20)`` -> float32 ``(n, 32)``: ``d * q + m``."""
    d = raw[:, 0:2].contiguous().view(torch.float16).float()          # (n, 1)
    m = raw[:, 2:4].contiguous().view(torch.float16).float()          # (n, 1)
    qs = raw[:, 4:]                                                   # (n, 16)
    q = torch.cat([qs & 0x0F, qs >> 4], dim=1).float()                # (n, 32): codes 0..15, then 16..31
    return d * q + m


def gguf_reference(x, qtype: str, dequantize_raw=None):
    """What the ``gguf`` package's pure-NumPy code gives: the bytes of ``x`` quantized as ``qtype``
    ("Q8_0" or "Q4_1"), or, with ``dequantize_raw``, those bytes de-quantized to float32."""
    import numpy as np
    from gguf import GGMLQuantizationType, quants

    t = getattr(GGMLQuantizationType, qtype)
    if dequantize_raw is not None:
        return torch.from_numpy(quants.dequantize(np.asarray(dequantize_raw, dtype=np.uint8), t).copy())
    return torch.from_numpy(quants.quantize(np.asarray(x, dtype=np.float32).reshape(-1, GGUF_BLOCK), t).copy())


def gguf_tensor(gguf_file, name: str) -> dict:
    """One tensor of a GGUF file: its type, shape (rows, columns) and raw block bytes ``(n_blocks, bytes)``."""
    import numpy as np
    from gguf import GGUFReader

    reader = GGUFReader(str(gguf_file))
    for t in reader.tensors:
        if t.name == name:
            raw = torch.from_numpy(np.array(t.data, dtype=np.uint8).reshape(-1, _block_bytes(t.tensor_type.name)))
            return {"name": name, "type": t.tensor_type.name, "shape": tuple(int(s) for s in reversed(t.shape)),
                    "blocks": raw}
    raise KeyError(f"{name!r} is not a tensor of {Path(gguf_file).name}")


def _block_bytes(qtype: str) -> int:
    sizes = {"Q8_0": 34, "Q4_1": 20, "Q4_0": 18}
    if qtype not in sizes:
        raise ValueError(f"only Q8_0, Q4_1 and Q4_0 blocks are read here (got {qtype})")
    return sizes[qtype]


def gguf_tensors(gguf_file) -> list[dict]:
    """Name, type and shape of every tensor in a GGUF file (no data read)."""
    from gguf import GGUFReader

    reader = GGUFReader(str(gguf_file))
    return [{"name": t.name, "type": t.tensor_type.name, "shape": tuple(int(s) for s in reversed(t.shape)),
             "bytes": int(t.n_bytes)} for t in reader.tensors]
