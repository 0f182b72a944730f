"""Removal with and without the extrapolation's detail, zoomed on the hole, on held-out photos:
input with its mask, OpenCV contrib FSR, Prism's fill without the detail, with it, and the original.

Usage: python3 fill_detail_figure.py EVAL_DIR BEFORE_DIR OUT.jpg [NAME ...]
EVAL_DIR and BEFORE_DIR are `prism-adapters eval` removal folders (`<data>/eval/remove`) written
with and without the detail pass; NAMEs are cases in them (default: two strokes, two objects).
"""
import os
import sys

import cv2
import numpy as np

from peers import fsr_inpaint, load

SIDE = 160
ZOOM = 2


def label(image, text):
    out = image.copy()
    cv2.rectangle(out, (0, 0), (len(text) * 9 + 10, 22), (0, 0, 0), -1)
    cv2.putText(out, text, (5, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def main():
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    after, before, out = sys.argv[1:4]
    names = sys.argv[4:] or ["kodim23", "sail", "chelsea-object", "coffee-object"]
    rows = []
    for name in names:
        file = lambda folder, suffix: os.path.join(folder, f"{name}_{suffix}.png")
        image, mask = load(file(after, "input")), load(file(after, "mask"), gray=True)
        ys, xs = np.nonzero(mask > 127)
        h, w = mask.shape
        y0 = int(np.clip(ys.mean() - SIDE / 2, 0, h - SIDE))
        x0 = int(np.clip(xs.mean() - SIDE / 2, 0, w - SIDE))
        shown = image.copy()
        shown[mask > 127] = (shown[mask > 127] * 0.4 + np.array([255, 60, 60]) * 0.6).astype(np.uint8)
        panels = [
            (shown, "input + mask"),
            (fsr_inpaint(image, mask), "OpenCV contrib FSR"),
            (load(file(before, "prism")), "Prism v2, smooth fill"),
            (load(file(after, "prism")), "Prism v2 + detail"),
            (load(file(after, "clean")), "original"),
        ]
        row = []
        for panel, text in panels:
            crop = panel[y0 : y0 + SIDE, x0 : x0 + SIDE]
            row.append(label(cv2.resize(crop, (SIDE * ZOOM, SIDE * ZOOM), interpolation=cv2.INTER_NEAREST), text))
        rows.append(np.hstack(row))
    cv2.imwrite(out, cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
