"""PSNR and the sharpness ratio inside the mask of OpenCV's Telea, NS and contrib FSR (fast) against the clean photo, on
the files `cargo run --release -p prism-adapters --example hole_fill_alone` writes, beside the
smooth and harmonic fills written there. Usage: python3 adapters/scripts/hole_fill_peers.py data/hole_fill/strokes (or .../objects)"""
import glob
import os
import sys

import cv2
import numpy as np


def sharpness(a, clean, mask):
    """Gradient energy inside the mask over the clean photo's (as peers.py scores removal)."""

    def energy(image):
        g = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float64) / 255.0
        return float((cv2.Sobel(g, cv2.CV_64F, 1, 0, ksize=3) ** 2 + cv2.Sobel(g, cv2.CV_64F, 0, 1, ksize=3) ** 2)[mask].mean())

    return energy(a) / max(energy(clean), 1e-12)


def psnr_in(a, b, mask):
    diff = (a.astype(np.float64) - b.astype(np.float64))[mask] / 255.0
    return 10 * np.log10(1.0 / max(np.mean(diff**2), 1e-12))


folder = sys.argv[1]
scores = {"smooth": [], "harmonic": [], "telea": [], "ns": [], "fsr_fast": []}
sharp = {name: [] for name in scores}
for clean_path in sorted(glob.glob(os.path.join(folder, "*_clean.png"))):
    stem = clean_path[: -len("_clean.png")]
    clean = cv2.imread(clean_path)
    image = cv2.imread(stem + "_input.png")
    mask = cv2.imread(stem + "_mask.png", cv2.IMREAD_GRAYSCALE) > 127
    hole = mask.astype(np.uint8) * 255
    results = {}
    if os.path.exists(stem + "_prism.png"):
        # Written by `cargo run --release -p prism-adapters --example removal_probe`.
        results["prism"] = cv2.imread(stem + "_prism.png")
    results |= {
        "smooth": cv2.imread(stem + "_smooth.png"),
        "harmonic": cv2.imread(stem + "_harmonic.png"),
        "telea": cv2.inpaint(image, hole, 5, cv2.INPAINT_TELEA),
        "ns": cv2.inpaint(image, hole, 5, cv2.INPAINT_NS),
    }
    # FSR's mask marks the valid pixels.
    fsr = image.copy()
    cv2.xphoto.inpaint(image, (~mask).astype(np.uint8) * 255, fsr, cv2.xphoto.INPAINT_FSR_FAST)
    results["fsr_fast"] = fsr
    for name, result in results.items():
        scores.setdefault(name, [])
        sharp.setdefault(name, [])
        scores[name].append(psnr_in(result, clean, mask))
        sharp[name].append(sharpness(result, clean, mask))
for name, values in scores.items():
    if not values:
        continue
    print(f"{name:9} {np.mean(values):6.2f} dB in the mask, sharpness {np.mean(sharp[name]):.2f} ({len(values)} photos)")
