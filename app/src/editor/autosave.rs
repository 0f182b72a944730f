//! Autosave: the open document (every history step's image and mask, and the step list) is
//! written to `<config>/autosave/` on a background thread after each change, so a crash or a
//! kill loses nothing; the next start offers it back. Images are 16-bit PNGs (the edits are
//! float; 8 bits would round them), each written once however many steps share it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use crossbeam_channel::{Receiver, Sender, unbounded};
use prism_engine::imageio::{DEFAULT_MAX_PIXELS, RgbImage, load_picture};
use prism_engine::record::EditRecord;
use serde::{Deserialize, Serialize};

use super::document::{Document, Step, StepKind};
use super::mask::MaskLayer;
use super::settings::write_file_atomically;

const MANIFEST: &str = "document.json";
const FORMAT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Manifest {
    version: u32,
    source: Option<PathBuf>,
    name: String,
    position: usize,
    saved_at_unix: u64,
    steps: Vec<StepEntry>,
}

#[derive(Serialize, Deserialize)]
struct StepEntry {
    kind: StepKind,
    label: String,
    record: Option<EditRecord>,
    image_id: u64,
    mask_id: u64,
}

/// What the restore prompt shows about an autosaved document.
#[derive(Clone, Debug)]
pub struct AutosaveSummary {
    pub name: String,
    pub steps: usize,
    pub saved_at_unix: u64,
}

struct Snapshot {
    manifest: Manifest,
    images: Vec<(u64, Arc<RgbImage>)>,
    masks: Vec<(u64, Arc<MaskLayer>)>,
}

/// The background writer. Only the newest pending snapshot is written.
pub struct Autosaver {
    dir: PathBuf,
    snapshots: Sender<Option<Snapshot>>,
    errors: Receiver<String>,
}

impl Autosaver {
    pub fn new(dir: PathBuf) -> Self {
        let (snapshots, snapshot_rx) = unbounded::<Option<Snapshot>>();
        let (error_tx, errors) = unbounded();
        let thread_dir = dir.clone();
        let spawned = std::thread::Builder::new().name("prism-autosave".into()).spawn(move || {
            while let Ok(mut next) = snapshot_rx.recv() {
                // Skip to the newest request: older snapshots are already out of date.
                while let Ok(newer) = snapshot_rx.try_recv() {
                    next = newer;
                }
                let result = match next {
                    Some(snapshot) => write_snapshot(&thread_dir, &snapshot),
                    None => clear(&thread_dir),
                };
                if let Err(error) = result {
                    let _ = error_tx.send(format!("{error:#}"));
                }
            }
        });
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start the autosave thread; autosave is off");
        }
        Self { dir, snapshots, errors }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Queues the document for writing.
    pub fn save(&self, document: &Document) {
        let mut images = BTreeMap::new();
        let mut masks = BTreeMap::new();
        let steps = document
            .steps()
            .iter()
            .map(|step| {
                images.entry(step.image_id).or_insert_with(|| step.image.clone());
                masks.entry(step.mask_id).or_insert_with(|| step.mask.clone());
                StepEntry {
                    kind: step.kind,
                    label: step.label.clone(),
                    record: step.record.clone(),
                    image_id: step.image_id,
                    mask_id: step.mask_id,
                }
            })
            .collect();
        let manifest = Manifest {
            version: FORMAT_VERSION,
            source: document.source.clone(),
            name: document.name.clone(),
            position: document.position(),
            saved_at_unix: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
            steps,
        };
        let snapshot = Snapshot { manifest, images: images.into_iter().collect(), masks: masks.into_iter().collect() };
        let _ = self.snapshots.send(Some(snapshot));
    }

    /// Forgets the autosaved document (it was saved, restored elsewhere, or discarded).
    pub fn discard(&self) {
        let _ = self.snapshots.send(None);
    }

    /// An autosave failure (full disk, read-only folder), for the status bar.
    pub fn take_error(&self) -> Option<String> {
        self.errors.try_recv().ok()
    }
}

fn image_file(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("image-{id}.png"))
}

fn mask_file(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("mask-{id}.png"))
}

fn write_snapshot(dir: &Path, snapshot: &Snapshot) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut keep = BTreeSet::from([PathBuf::from(MANIFEST)]);
    for (id, image) in &snapshot.images {
        let path = image_file(dir, *id);
        if !path.exists() {
            let pixels: Vec<u16> = image.data.iter().map(|v| (v.clamp(0.0, 1.0) * 65535.0).round() as u16).collect();
            let buffer = image::ImageBuffer::<image::Rgb<u16>, _>::from_raw(image.width as u32, image.height as u32, pixels)
                .ok_or_else(|| anyhow!("image {id} has the wrong number of pixels"))?;
            write_png(&path, &image::DynamicImage::ImageRgb16(buffer))?;
        }
        keep.insert(path.file_name().map(PathBuf::from).unwrap_or_default());
    }
    for (id, mask) in &snapshot.masks {
        let path = mask_file(dir, *id);
        if !path.exists() {
            let buffer = image::GrayImage::from_raw(mask.width as u32, mask.height as u32, mask.data.clone())
                .ok_or_else(|| anyhow!("mask {id} has the wrong number of pixels"))?;
            write_png(&path, &image::DynamicImage::ImageLuma8(buffer))?;
        }
        keep.insert(path.file_name().map(PathBuf::from).unwrap_or_default());
    }
    let text = serde_json::to_vec_pretty(&snapshot.manifest)?;
    write_file_atomically(&dir.join(MANIFEST), &text)
        .with_context(|| format!("cannot write the autosave in {}", dir.display()))?;
    // Files of steps that no longer exist.
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = PathBuf::from(entry.file_name());
        if !keep.contains(&name) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}

fn write_png(path: &Path, image: &image::DynamicImage) -> Result<()> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, image::ImageFormat::Png)?;
    write_file_atomically(path, bytes.get_ref()).with_context(|| format!("cannot write {}", path.display()))
}

fn clear(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error.into()),
        _ => Ok(()),
    }
}

fn read_manifest(dir: &Path) -> Result<Option<Manifest>> {
    let path = dir.join(MANIFEST);
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", path.display())),
    };
    let manifest: Manifest = serde_json::from_slice(&text).with_context(|| format!("{} is damaged", path.display()))?;
    if manifest.version != FORMAT_VERSION {
        bail!("the autosave was written by another version of Prism (format {})", manifest.version);
    }
    Ok(Some(manifest))
}

/// Whether an autosaved document waits in `dir`.
pub fn pending(dir: &Path) -> Option<AutosaveSummary> {
    match read_manifest(dir) {
        Ok(Some(m)) => Some(AutosaveSummary { name: m.name, steps: m.steps.len(), saved_at_unix: m.saved_at_unix }),
        Ok(None) => None,
        Err(error) => {
            tracing::warn!(error = %format!("{error:#}"), "ignoring an unreadable autosave");
            None
        }
    }
}

/// Reads the autosaved document back, every step included.
pub fn restore(dir: &Path) -> Result<Document> {
    let manifest = read_manifest(dir)?.ok_or_else(|| anyhow!("there is no autosaved document"))?;
    let mut images: BTreeMap<u64, Arc<RgbImage>> = BTreeMap::new();
    let mut masks: BTreeMap<u64, Arc<MaskLayer>> = BTreeMap::new();
    let mut steps = Vec::with_capacity(manifest.steps.len());
    for entry in manifest.steps {
        let image = match images.get(&entry.image_id) {
            Some(image) => image.clone(),
            None => {
                let picture = load_picture(&image_file(dir, entry.image_id), DEFAULT_MAX_PIXELS)?;
                let image = Arc::new(picture.rgb);
                images.insert(entry.image_id, image.clone());
                image
            }
        };
        let mask = match masks.get(&entry.mask_id) {
            Some(mask) => mask.clone(),
            None => {
                let path = mask_file(dir, entry.mask_id);
                let gray = image::open(&path).with_context(|| format!("cannot read {}", path.display()))?.to_luma8();
                let mut layer = MaskLayer::new(gray.width() as usize, gray.height() as usize);
                layer.data = gray.into_raw();
                let mask = Arc::new(layer);
                masks.insert(entry.mask_id, mask.clone());
                mask
            }
        };
        if (mask.width, mask.height) != (image.width, image.height) {
            bail!("the autosave is inconsistent: step '{}' has a mask of another size", entry.label);
        }
        steps.push(Step {
            kind: entry.kind,
            label: entry.label,
            image,
            mask,
            record: entry.record,
            image_id: entry.image_id,
            mask_id: entry.mask_id,
        });
    }
    Document::from_steps(manifest.source, manifest.name, steps, manifest.position)
        .ok_or_else(|| anyhow!("the autosave is inconsistent: it has no step {}", manifest.position))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_document_survives_autosave_and_restore() {
        let dir = tempfile::tempdir().expect("temp dir");
        let autosave_dir = dir.path().join("autosave");
        let mut image = RgbImage::new(12, 9);
        image.data.iter_mut().enumerate().for_each(|(i, v)| *v = (i % 13) as f32 / 12.0);
        let mut doc = Document::new(image, Some(PathBuf::from("/photos/cat.jpg")), "cat.jpg".into());
        doc.mask.fill_rect((2.0, 2.0), (6.0, 6.0), false);
        doc.commit_mask("Rectangle");
        let mut edited = (**doc.image()).clone();
        edited.data.iter_mut().for_each(|v| *v = 1.0 - *v);
        doc.commit_edit(Arc::new(edited), super::super::document::tests_support::record("Denoise"), false);
        doc.undo();

        let saver = Autosaver::new(autosave_dir.clone());
        saver.save(&doc);
        let deadline = Instant::now() + Duration::from_secs(20);
        while pending(&autosave_dir).is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let summary = pending(&autosave_dir).expect("written");
        assert_eq!((summary.name.as_str(), summary.steps), ("cat.jpg", 3));
        let restored = restore(&autosave_dir).expect("restore");
        assert_eq!(restored.steps().len(), 3);
        assert_eq!(restored.position(), 1);
        assert_eq!(restored.mask.data, doc.mask.data);
        for (a, b) in restored.steps().iter().zip(doc.steps()) {
            let error = a.image.data.iter().zip(&b.image.data).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
            assert!(error < 1e-4, "16-bit PNGs keep the float edit: {error}");
            assert_eq!(a.record, b.record);
        }
        // The first two steps share one image file.
        let pngs = std::fs::read_dir(&autosave_dir)
            .expect("dir")
            .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "png")))
            .count();
        assert_eq!(pngs, 2 + 2);

        saver.discard();
        let deadline = Instant::now() + Duration::from_secs(20);
        while autosave_dir.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(pending(&autosave_dir).is_none());
    }

    #[test]
    fn a_damaged_autosave_is_an_error_not_a_crash() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(MANIFEST), "{ not json").expect("write");
        assert!(pending(dir.path()).is_none());
        let error = restore(dir.path()).err().map(|e| format!("{e:#}")).unwrap_or_default();
        assert!(error.contains("damaged"), "{error}");
    }
}
