"""How much PSNR inside the mask texture costs when it is not where the photo's texture was.

Usage: python3 texture_probe.py EVAL_DIR

Takes Prism's held-out removals (EVAL_DIR/remove/*_prism.png, written by `prism-adapters eval`)
and adds to each fill the fine detail (the input minus its Gaussian blur, sigma 2) of a same-shaped
region of the same photo outside the hole, at a random shift, times ALPHA. It answers whether the
sharpness target (0.55 of the clean photo's gradient energy) can be bought by adding plausible
texture to a smooth fill while keeping the PSNR target: texture in the wrong place is charged as
error. Scores with peers.py's own metrics.
"""

import glob
import os
import sys

import cv2
import numpy as np

from peers import load, scores

ALPHAS = [0.0, 0.5, 0.7, 1.0]
# Shifts tried per example before giving up (the region must lie inside the photo, off the hole).
TRIES = 50


def texture_from_elsewhere(image, inside, rng):
    """The fine detail of a region shaped like the hole, taken from elsewhere in `image`."""
    detail = image - cv2.GaussianBlur(image, (0, 0), 2.0)
    height, width = inside.shape
    ys, xs = np.nonzero(inside)
    texture = np.zeros_like(image)
    for _ in range(TRIES):
        dy, dx = rng.integers(-height, height), rng.integers(-width, width)
        y2, x2 = ys + dy, xs + dx
        if (y2 < 0).any() or (x2 < 0).any() or (y2 >= height).any() or (x2 >= width).any() or inside[y2, x2].any():
            continue
        texture[ys, xs] = detail[y2, x2]
        break
    return texture


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    outputs = sorted(glob.glob(os.path.join(sys.argv[1], "remove", "*_prism.png")))
    if not outputs:
        raise SystemExit(f"no removals in {sys.argv[1]}/remove: run `prism-adapters eval` first")
    print("| added texture (x its own strength) | PSNR in the mask | sharpness ratio |")
    print("|---:|---:|---:|")
    for alpha in ALPHAS:
        rng = np.random.default_rng(0)
        psnrs, sharpness = [], []
        for path in outputs:
            stem = path[: -len("_prism.png")]
            clean, mask = load(stem + "_clean.png"), load(stem + "_mask.png", gray=True)
            inside = mask > 127
            texture = texture_from_elsewhere(load(stem + "_input.png").astype(np.float64), inside, rng)
            out = load(path).astype(np.float64)
            out[inside] += alpha * texture[inside]
            psnr, _, sharp, _ = scores(np.clip(out, 0, 255).round().astype(np.uint8), clean, mask)
            psnrs.append(psnr)
            sharpness.append(sharp)
        print(f"| {alpha:.1f} | {np.mean(psnrs):.2f} dB | {np.mean(sharpness):.2f} |")


if __name__ == "__main__":
    main()
