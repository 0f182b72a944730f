"""Scores Prism's held-out outputs beside OpenCV's classical methods, in one script.

Usage: python3 peers.py EVAL_DIR RESULTS_JSON

EVAL_DIR/<task>/<photo>_{clean,input,mask,prism,prism_float}.png are written by
`prism-adapters eval`. Each peer's parameters are tuned on the whole held-out set (the best
setting of a grid, reported), so the peer is as strong as a user tweaking one slider could make it.
Metrics: PSNR and SSIM against the clean photo (inside the mask for `remove`).
"""

import json
import os
import sys

import cv2
import numpy as np
from skimage.metrics import structural_similarity


def load(path, gray=False):
    image = cv2.imread(path, cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit(f"cannot read {path}")
    return image if gray else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def scores(out, clean, mask=None):
    a = out.astype(np.float64) / 255.0
    b = clean.astype(np.float64) / 255.0
    _, ssim_map = structural_similarity(a, b, channel_axis=2, data_range=1.0, full=True)
    ssim_map = ssim_map.mean(axis=2)
    if mask is not None:
        inside = mask > 127
        mse = ((a - b) ** 2)[inside].mean()
        ssim = ssim_map[inside].mean()
    else:
        mse = ((a - b) ** 2).mean()
        ssim = ssim_map.mean()
    return 10 * np.log10(1.0 / max(mse, 1e-12)), float(ssim)


def unsharp(image, sigma, amount):
    f = image.astype(np.float32)
    blurred = cv2.GaussianBlur(f, (0, 0), sigma)
    return np.clip(f + amount * (f - blurred), 0, 255).round().astype(np.uint8)


def curve(image, gain, gamma):
    f = image.astype(np.float32) / 255.0
    return np.clip(gain * np.power(f, gamma) * 255.0, 0, 255).round().astype(np.uint8)


def peer_grid(task):
    """(method name, parameter note, function of (input, mask, clean size)) for each peer setting."""
    if task == "remove":
        return [
            ("cv2.inpaint Telea", "radius 5", lambda x, m, s: cv2.inpaint(x, m, 5, cv2.INPAINT_TELEA)),
            ("cv2.inpaint NS", "radius 5", lambda x, m, s: cv2.inpaint(x, m, 5, cv2.INPAINT_NS)),
        ]
    if task == "denoise":
        return [
            ("fastNlMeansDenoisingColored", f"h={h}", lambda x, m, s, h=h: cv2.fastNlMeansDenoisingColored(x, None, h, h, 7, 21))
            for h in (6, 9, 12, 15, 18)
        ]
    if task == "sharpen":
        return [
            ("unsharp mask", f"sigma={sg} amount={am}", lambda x, m, s, sg=sg, am=am: unsharp(x, sg, am))
            for sg in (1.0, 2.0, 3.0)
            for am in (0.5, 1.0, 1.5, 2.5)
        ]
    if task == "upscale":
        return [
            ("bicubic", "", lambda x, m, s: cv2.resize(x, s, interpolation=cv2.INTER_CUBIC)),
            ("Lanczos", "", lambda x, m, s: cv2.resize(x, s, interpolation=cv2.INTER_LANCZOS4)),
        ]
    if task == "dejpeg":
        return [("decoded JPEG", "quality 15", lambda x, m, s: x)]
    if task == "lowlight":
        return [
            ("gain/gamma curve", f"gain={g} gamma={gm}", lambda x, m, s, g=g, gm=gm: curve(x, g, gm))
            for g in (1.0, 1.5, 2.0, 2.5, 3.0, 3.25, 3.5, 3.75, 4.0, 4.25, 4.5, 5.0, 6.0)
            for gm in (0.4, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.9, 1.0)
        ]
    if task == "colorize":
        return [("gray input", "", lambda x, m, s: x)]
    raise SystemExit(f"unknown task {task}")


def main():
    eval_dir, results_path = sys.argv[1], sys.argv[2]
    results = []
    for task in sorted(os.listdir(eval_dir)):
        folder = os.path.join(eval_dir, task)
        if not os.path.isdir(folder):
            continue
        photos = sorted(f[: -len("_clean.png")] for f in os.listdir(folder) if f.endswith("_clean.png"))
        region = "inside the mask" if task == "remove" else "whole image"
        per_method = {}
        for photo in photos:
            path = lambda kind: os.path.join(folder, f"{photo}_{kind}.png")
            clean = load(path("clean"))
            x = load(path("input"))
            mask = load(path("mask"), gray=True)
            metric_mask = mask if task == "remove" else None
            size = (clean.shape[1], clean.shape[0])
            for ours in ("prism", "prism_float", "prism_default"):
                if ours == "prism_default" and not os.path.exists(path(ours)):
                    continue  # only tools that take a setting have a run at its default
                per_method.setdefault((ours, ""), []).append(scores(load(path(ours)), clean, metric_mask))
            for method, note, run in peer_grid(task):
                per_method.setdefault((method, note), []).append(scores(run(x, mask, size), clean, metric_mask))
        best = {}
        for (method, note), values in per_method.items():
            psnr = float(np.mean([v[0] for v in values]))
            ssim = float(np.mean([v[1] for v in values]))
            if method not in best or psnr > best[method]["psnr"]:
                best[method] = {"method": method, "psnr": psnr, "ssim": ssim, "note": note}
        results.append({"task": task, "metric_region": region, "images": len(photos), "scores": list(best.values())})
        line = ", ".join(f"{s['method']} {s['psnr']:.2f}" for s in best.values())
        print(f"{task}: {line}", flush=True)
    with open(results_path, "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
