"""Where the lowlight and colorize tools lose PSNR, from the outputs `prism-adapters eval` left in
DATA/eval (run that first). Usage: python3 gaps.py DATA/eval

lowlight: the tool is blind to the exposure it must undo, while its peer curve is tuned on the
held-out set's one fixed exposure. Rescaling each output by the single gain that best matches the
clean photo (an oracle that knows only the exposure) shows how much of the gap is exposure.

colorize: splits the error into luminance (which the gray input already has right) and chroma.
"""

import glob
import os
import sys

import cv2
import numpy as np


def load(path):
    return cv2.cvtColor(cv2.imread(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB).astype(np.float64) / 255.0


def psnr(a, b):
    return 10.0 * np.log10(1.0 / max(np.mean((np.clip(a, 0, 1) - b) ** 2), 1e-12))


def photos(folder):
    return sorted(os.path.basename(p)[: -len("_clean.png")] for p in glob.glob(os.path.join(folder, "*_clean.png")))


def lowlight(folder):
    plain, exposed = [], []
    for name in photos(folder):
        clean = load(os.path.join(folder, f"{name}_clean.png"))
        out = load(os.path.join(folder, f"{name}_prism.png"))
        gain = float(np.sum(out * clean) / max(np.sum(out * out), 1e-12))
        plain.append(psnr(out, clean))
        exposed.append(psnr(out * gain, clean))
    print(f"lowlight: prism {np.mean(plain):.2f} dB; with each photo's best single gain {np.mean(exposed):.2f} dB")


def luma(image):
    return image @ np.array([0.299, 0.587, 0.114])


def colorize(folder):
    rows = {"prism": [], "input": []}
    for name in photos(folder):
        clean = load(os.path.join(folder, f"{name}_clean.png"))
        for kind in rows:
            out = np.clip(load(os.path.join(folder, f"{name}_{kind}.png")), 0, 1)
            luma_mse = np.mean((luma(out) - luma(clean)) ** 2)
            chroma_mse = np.mean(((out - luma(out)[..., None]) - (clean - luma(clean)[..., None])) ** 2)
            rows[kind].append((psnr(out, clean), luma_mse, chroma_mse))
    for kind, values in rows.items():
        p, l, c = np.mean(np.array(values), axis=0)
        print(f"colorize {kind}: {p:.2f} dB; luminance MSE {l:.2e}, chroma MSE {c:.2e}")


if __name__ == "__main__":
    root = sys.argv[1]
    lowlight(os.path.join(root, "lowlight"))
    colorize(os.path.join(root, "colorize"))
