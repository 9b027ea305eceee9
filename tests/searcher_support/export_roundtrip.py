"""Runs exported models in Python and compares them with the Rust network.

Usage: python export_roundtrip.py cases.json
Each case names raw little-endian float32 files (the input and the Rust
network's output, with their shapes) and the exported files; the script
prints, as JSON, per case the largest |difference| over the largest
|reference| for `torch.jit.load` of the TorchScript and for ONNX Runtime on
the ONNX file.
"""
import json
import sys

import numpy as np
import torch


def rel(a, b):
    return float(np.abs(a - b).max() / max(float(np.abs(b).max()), 1e-30))


def main():
    cases = json.load(open(sys.argv[1]))
    torch.set_num_threads(2)
    results = []
    for case in cases:
        x = np.fromfile(case["input"], dtype="<f4").reshape(case["input_shape"])
        ref = np.fromfile(case["reference"], dtype="<f4").reshape(case["output_shape"])
        result = {"name": case["name"]}
        module = torch.jit.load(case["torchscript"])
        module.eval()
        with torch.no_grad():
            result["torchscript"] = rel(module(torch.from_numpy(x)).numpy(), ref)
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 2
        session = ort.InferenceSession(case["onnx"], options, providers=["CPUExecutionProvider"])
        result["onnx"] = rel(session.run(None, {"input": x})[0], ref)
        results.append(result)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
