"""Where the lowlight and colorize tools lose PSNR, from the outputs `prism-adapters eval` left in
DATA/eval (run that first). Usage: python3 gaps.py DATA/eval

lowlight: the tool is blind to the exposure it must undo, while its peer curve is tuned on the
held-out set's one fixed exposure. Rescaling each output by the single gain that best matches the
clean photo (an oracle that knows only the exposure) shows how much of the gap is exposure.
Rescaling each output instead so its mean brightness is the training photos' mean (gray world)
shows whether an image-wide statistic could tell the exposure.

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


def mean_brightness(folder):
    """Mean of the training photos, each area-resized to 256x256."""
    means = []
    for path in sorted(glob.glob(os.path.join(folder, "*"))):
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is not None:
            means.append(cv2.resize(image, (256, 256), interpolation=cv2.INTER_AREA).mean() / 255.0)
    return float(np.mean(means)) if means else None


def lowlight(folder, training_photos):
    plain, exposed, gray_world, brightness = [], [], [], []
    typical = mean_brightness(training_photos)
    for name in photos(folder):
        clean = load(os.path.join(folder, f"{name}_clean.png"))
        out = load(os.path.join(folder, f"{name}_prism.png"))
        brightness.append(clean.mean())
        gain = float(np.sum(out * clean) / max(np.sum(out * out), 1e-12))
        plain.append(psnr(out, clean))
        exposed.append(psnr(out * gain, clean))
        if typical is not None:
            gray_world.append(psnr(out * typical / max(out.mean(), 1e-6), clean))
    print(f"lowlight: prism {np.mean(plain):.2f} dB; with each photo's best single gain {np.mean(exposed):.2f} dB")
    if gray_world:
        print(
            f"lowlight: prism with each photo's mean brightness set to the training photos' ({typical:.3f}): "
            f"{np.mean(gray_world):.2f} dB (the held-out photos' mean brightness runs {min(brightness):.2f}-{max(brightness):.2f})"
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
    lowlight(os.path.join(root, "lowlight"), os.path.join(root, "..", "photos", "train"))
    colorize(os.path.join(root, "colorize"))
