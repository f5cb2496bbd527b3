"""The streaming ONNX writer (model/onnx_write.py): the graph + one data file it writes hold the same
model as `onnx`'s own save with external data, whether the weights came inside the exporter's bytes
or as the exporter's weight table (the graph exported without them)."""

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from clipseek.model.export import _exporter_params  # noqa: E402
from clipseek.model.onnx_write import ALIGN, MemoryFile, write_external  # noqa: E402


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.GELU(), torch.nn.LayerNorm(32),
                               torch.nn.Linear(32, 4)).eval()


def _export(model, x, with_params: bool):
    mem = MemoryFile()
    with _exporter_params() as cap, torch.no_grad():
        torch.onnx.export(model, (x,), mem, input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "b"}},
                          opset_version=17, dynamo=False, export_params=with_params or cap is None)
    return mem.getvalue(), (None if with_params else cap.params)


def _initializers(path):
    arrays = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}
    return arrays, onnx.load(str(path), load_external_data=False)


@pytest.mark.parametrize("with_params", [True, False], ids=["weights-in-bytes", "weights-from-table"])
def test_written_model_equals_onnx_save_with_external_data(tmp_path, with_params):
    model, x = _model(), torch.randn(3, 5, 8)
    data, params = _export(model, x, with_params)
    if not with_params:
        assert params  # the exporter's table was captured and the bytes hold no weights
    ours = tmp_path / "ours.onnx"
    write_external(data, ours, params)
    onnx.checker.check_model(str(ours))
    ref_bytes, _ = _export(model, x, True)
    ref = tmp_path / "ref.onnx"
    onnx.save_model(onnx.load_from_string(ref_bytes), str(ref), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="ref.onnx.data", size_threshold=0)
    got, m = _initializers(ours)
    want, _ = _initializers(ref)
    assert got.keys() == want.keys() and all(np.array_equal(got[k], want[k]) for k in want)
    weights = {i.name for i in m.graph.initializer}
    assert [i.name for i in m.graph.input] == ["x"] and not weights & {i.name for i in m.graph.input}
    for t in m.graph.initializer:
        entry = {e.key: e.value for e in t.external_data}
        assert t.data_location == onnx.TensorProto.EXTERNAL and entry["location"] == "ours.onnx.data"
        assert int(entry["offset"]) % ALIGN == 0 and not t.HasField("raw_data")
    sess = ort.InferenceSession(str(ours), providers=["CPUExecutionProvider"])
    y = sess.run(None, {"x": x.numpy()})[0]
    with torch.no_grad():
        assert np.allclose(y, model(x).numpy(), atol=1e-5)
