"""Where the lowlight and colorize tools lose PSNR, from the outputs `prism-adapters eval` left in
DATA/eval (run that first). Usage: python3 gaps.py DATA/eval

lowlight: the engine brightens the input by an exposure before the tool runs, set by hand or
estimated from the photo's highlights. Rescaling each estimated-exposure output by the single gain
that best matches the clean photo (an oracle that knows only the exposure) shows how much the
estimate costs; the clean photos' own highlight levels show why it misses (it assumes the
highlights of a normally exposed photo).

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


def highlight(image):
    """What the engine's estimate measures: the 99.5th percentile of each pixel's largest channel
    after a 3x3 mean."""
    return float(np.percentile(cv2.blur(image, (3, 3)).max(axis=2), 99.5))


def lowlight(folder):
    rows = {"prism": [], "prism_default": []}
    rescaled, levels = [], []
    for name in photos(folder):
        clean = load(os.path.join(folder, f"{name}_clean.png"))
        levels.append(highlight(clean))
        for kind in rows:
            path = os.path.join(folder, f"{name}_{kind}.png")
            if os.path.exists(path):
                rows[kind].append(psnr(load(path), clean))
        path = os.path.join(folder, f"{name}_prism_default.png")
        if os.path.exists(path):
            out = load(path)
            gain = float(np.sum(out * clean) / max(np.sum(out * out), 1e-12))
            rescaled.append(psnr(out * gain, clean))
    if not rows["prism_default"]:
        return
    print(
        f"lowlight: exposure by hand {np.mean(rows['prism']):.2f} dB; estimated {np.mean(rows['prism_default']):.2f} dB; "
        f"estimated, then each photo's best single gain {np.mean(rescaled):.2f} dB"
    )
    print(
        f"lowlight: the clean photos' highlight level runs {min(levels):.2f}-{max(levels):.2f} "
        f"(the estimate assumes 0.988; {sum(level < 0.9 for level in levels)} of {len(levels)} are under 0.9)"
    )


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
    if os.path.isdir(os.path.join(root, "colorize")):  # not scored when the folder leaves it out
        colorize(os.path.join(root, "colorize"))
