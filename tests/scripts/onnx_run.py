"""Runs Prism's exported ONNX graph with ONNX Runtime, the independent checker of the export.

One InferenceSession serves every run of the manifest: each run feeds another adapter's tensors
(a tool switch is new inputs, not a new session). Usage: onnx_run.py MANIFEST.json
"""
import json
import sys

import numpy as np
import onnxruntime as ort


def load(entry):
    return np.fromfile(entry["file"], dtype=entry["dtype"]).reshape(entry["shape"])


def main():
    with open(sys.argv[1]) as f:
        manifest = json.load(f)
    session = ort.InferenceSession(manifest["model"], providers=["CPUExecutionProvider"])
    image = load(manifest["image"])
    for run in manifest["runs"]:
        feeds = {"image": image, "alpha": np.array([run["alpha"]], dtype=np.float32)}
        for tensor in run["tensors"]:
            feeds[tensor["name"]] = load(tensor)
        (residual,) = session.run(["residual"], feeds)
        residual.astype(np.float32).tofile(run["output"])
    print(f"onnxruntime {ort.__version__}: {len(manifest['runs'])} runs on one session")


if __name__ == "__main__":
    main()
