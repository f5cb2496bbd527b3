"""Write an ONNX model that the exporter produced in memory as a graph file plus one external-data file,
streaming: each weight goes to `<graph>.data` once, with no copy of the model in memory and no `onnx`
package (whose load + save with external data held the whole model as Python protobuf objects, wrote
it, read it back and wrote it again).

The weights come either inside the exporter's bytes (initializers with `raw_data`) or, when the graph
was exported without them (`export_params=False`: the exporter then serializes no weights at all),
as the exporter's own name -> tensor table, whose names are graph inputs: those inputs become
initializers. The ONNX file is a protobuf `ModelProto`; only its `graph` (field 7) is rewritten: its
`initializer` tensors (field 5) get `external_data` (field 13: location, offset, length) and
`data_location = EXTERNAL` (field 14) instead of `raw_data` (field 9), each tensor's bytes aligned to
64 in the data file, exactly what `onnx.save_model(save_as_external_data=True)` writes; graph `input`s
(field 11) that are weights are dropped. Every other byte is copied as it is.
"""

from __future__ import annotations

import os
from pathlib import Path

ALIGN = 64
_GRAPH, _INITIALIZER, _INPUT, _RAW_DATA, _EXTERNAL_DATA, _DATA_LOCATION = 7, 5, 11, 9, 13, 14
# torch dtype name -> ONNX TensorProto.DataType
ONNX_TYPES = {"float32": 1, "uint8": 2, "int8": 3, "int16": 5, "int32": 6, "int64": 7, "bool": 9,
              "float16": 10, "float64": 11, "bfloat16": 16}


class MemoryFile:
    """A write-only file object that keeps what is written by reference (the exporter writes the whole
    model in one call: no copy into a buffer)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, b) -> int:
        self.parts.append(b)
        return len(b)

    def flush(self) -> None:
        pass

    def getvalue(self) -> bytes | memoryview:
        return self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)


def _varint(buf, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def _enc_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _fields(buf, start: int, end: int):
    """(field number, wire type, field start, value start, value end) of each field in buf[start:end]."""
    i = start
    while i < end:
        at = i
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, j = _varint(buf, i)
        elif wire == 1:
            j = i + 8
        elif wire == 5:
            j = i + 4
        elif wire == 2:
            n, i = _varint(buf, i)
            j = i + n
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} in an ONNX model")
        yield field, wire, at, i, j
        i = j


def _len_field(field: int, payload: bytes) -> bytes:
    return _enc_varint(field << 3 | 2) + _enc_varint(len(payload)) + payload


def _entry(key: str, value: str) -> bytes:
    return _len_field(_EXTERNAL_DATA, _len_field(1, key.encode()) + _len_field(2, value.encode()))


class _DataFile:
    def __init__(self, path: Path):
        self.location = path.name
        self.f = open(path, "wb")
        self.offset = 0

    def add(self, data) -> tuple[int, int]:
        pad = -self.offset % ALIGN
        if pad:
            self.f.write(b"\0" * pad)
            self.offset += pad
        at = self.offset
        self.f.write(data)
        self.offset += len(data)
        return at, len(data)


def _external(data: "_DataFile", raw) -> list[bytes]:
    offset, length = data.add(raw)
    return [_entry("location", data.location), _entry("offset", str(offset)), _entry("length", str(length)),
            _enc_varint(_DATA_LOCATION << 3 | 0) + _enc_varint(1)]


def _tensor(buf, start: int, end: int, data: _DataFile) -> bytes:
    kept, raw = [], None
    for field, wire, at, vs, ve in _fields(buf, start, end):
        if field == _RAW_DATA and wire == 2:
            raw = (vs, ve)
        elif field not in (_EXTERNAL_DATA, _DATA_LOCATION):
            kept.append(bytes(buf[at:ve]))
    if raw is None:
        return bytes(buf[start:end])
    return b"".join(kept + _external(data, buf[raw[0]:raw[1]]))


def _param_tensor(name: str, tensor, data: _DataFile) -> bytes:
    """A TensorProto for a torch tensor, its bytes written to the data file (no copy when contiguous)."""
    import torch

    dtype = str(tensor.dtype).replace("torch.", "")
    if dtype not in ONNX_TYPES:
        raise ValueError(f"weight {name} has dtype {dtype}, which ONNX export here does not map")
    t = tensor.detach().contiguous()
    dims = b"".join(_enc_varint(1 << 3 | 0) + _enc_varint(int(d)) for d in t.shape)
    head = dims + _enc_varint(2 << 3 | 0) + _enc_varint(ONNX_TYPES[dtype]) + _len_field(8, name.encode())
    raw = memoryview(t.reshape(-1).view(torch.uint8).numpy()) if t.numel() else b""
    return b"".join([head] + _external(data, raw))


def _value_name(buf, start: int, end: int) -> str | None:
    for field, wire, _at, vs, ve in _fields(buf, start, end):
        if field == 1 and wire == 2:
            return bytes(buf[vs:ve]).decode()
    return None


def _graph(buf, start: int, end: int, data: _DataFile, params: dict | None) -> bytes:
    out = []
    for field, wire, at, vs, ve in _fields(buf, start, end):
        if field == _INITIALIZER and wire == 2:
            out.append(_len_field(_INITIALIZER, _tensor(buf, vs, ve, data)))
        elif field == _INPUT and wire == 2 and params and (name := _value_name(buf, vs, ve)) is not None \
                and name in params:
            out.append(_len_field(_INITIALIZER, _param_tensor(name, params.pop(name), data)))
        else:
            out.append(bytes(buf[at:ve]))
    return b"".join(out)


def write_external(model: bytes | memoryview, path: str | os.PathLike, params: dict | None = None) -> None:
    """Write the serialized ONNX `model` as `path` (the graph) + `path.data` (every initializer's
    weights), as `model/onnx_store.py` describes an export's files. `params`: name -> tensor of the
    weights that `model` has as graph inputs (exported without them); emptied as they are written."""
    path = Path(path)
    buf = memoryview(model)
    data = _DataFile(path.with_name(path.name + ".data"))
    try:
        out = []
        for field, wire, at, vs, ve in _fields(buf, 0, len(buf)):
            if field == _GRAPH and wire == 2:
                out.append(_len_field(_GRAPH, _graph(buf, vs, ve, data, params)))
            else:
                out.append(bytes(buf[at:ve]))
    finally:
        data.f.close()
    path.write_bytes(b"".join(out))
