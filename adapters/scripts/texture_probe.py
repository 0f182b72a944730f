"""How much PSNR inside the mask texture costs when it is not where the photo's texture was.

Usage: python3 texture_probe.py EVAL_DIR

Takes Prism's held-out removals (EVAL_DIR/remove/*_prism.png, written by `prism-adapters eval`)
and adds to each fill fine detail (an image minus its Gaussian blur, sigma 2), times ALPHA: that of
a same-shaped region of the same photo outside the hole, at a random shift, and that of OpenCV
contrib's exemplar inpainting (shift-map, which places patches from the photo in the hole; also
scored on its own). It answers whether the
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
    fine = detail(image)
    height, width = inside.shape
    ys, xs = np.nonzero(inside)
    texture = np.zeros_like(image)
    for _ in range(TRIES):
        dy, dx = rng.integers(-height, height), rng.integers(-width, width)
        y2, x2 = ys + dy, xs + dx
        if (y2 < 0).any() or (x2 < 0).any() or (y2 >= height).any() or (x2 >= width).any() or inside[y2, x2].any():
            continue
        texture[ys, xs] = fine[y2, x2]
        break
    return texture


def shiftmap(image, inside):
    """OpenCV contrib's exemplar (shift-map) inpainting of `inside` (its mask marks valid pixels)."""
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    out = bgr.copy()
    cv2.xphoto.inpaint(bgr, (~inside).astype(np.uint8) * 255, out, cv2.xphoto.INPAINT_SHIFTMAP)
    return cv2.cvtColor(out, cv2.COLOR_BGR2RGB)


def detail(image):
    return image - cv2.GaussianBlur(image, (0, 0), 2.0)


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    outputs = sorted(glob.glob(os.path.join(sys.argv[1], "remove", "*_prism.png")))
    if not outputs:
        raise SystemExit(f"no removals in {sys.argv[1]}/remove: run `prism-adapters eval` first")
    examples = []
    for path in outputs:
        stem = path[: -len("_prism.png")]
        image = load(stem + "_input.png")
        inside = load(stem + "_mask.png", gray=True) > 127
        examples.append((load(path), load(stem + "_clean.png"), inside, image, shiftmap(image, inside)))

    def score(fills):
        results = [scores(np.clip(f, 0, 255).round().astype(np.uint8), clean, (inside * 255).astype(np.uint8))
                   for f, (_, clean, inside, _, _) in zip(fills, examples)]
        return np.mean([r[0] for r in results]), np.mean([r[2] for r in results])

    print("| fill | PSNR in the mask | sharpness ratio |")
    print("|---|---:|---:|")
    psnr, sharp = score([e[4] for e in examples])
    print(f"| OpenCV shift-map alone | {psnr:.2f} dB | {sharp:.2f} |")
    for source in ["elsewhere", "shift-map"]:
        rng = np.random.default_rng(0)
        textures = [
            texture_from_elsewhere(image.astype(np.float64), inside, rng)
            if source == "elsewhere"
            else np.where(inside[..., None], detail(filled.astype(np.float64)), 0.0)
            for _, _, inside, image, filled in examples
        ]
        for alpha in ALPHAS:
            fills = [out.astype(np.float64) + alpha * t for (out, *_), t in zip(examples, textures)]
            psnr, sharp = score(fills)
            print(f"| Prism + {alpha:.1f} x detail from {source} | {psnr:.2f} dB | {sharp:.2f} |")

if __name__ == "__main__":
    main()
