//! The open document: the photo, the working mask and the history. Every history step holds the
//! whole state (image and mask, shared with its neighbours when unchanged), so undo, redo and
//! "click a step to see it" are the same operation: move the position.

use std::path::PathBuf;
use std::sync::Arc;

use prism_engine::imageio::RgbImage;
use prism_engine::record::EditRecord;
use serde::{Deserialize, Serialize};

use super::mask::MaskLayer;

/// Steps kept; older ones are dropped (the first kept one becomes the new start).
pub const MAX_STEPS: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepKind {
    Open,
    Mask,
    Edit,
}

#[derive(Clone, Debug)]
pub struct Step {
    pub kind: StepKind,
    pub label: String,
    pub image: Arc<RgbImage>,
    pub mask: Arc<MaskLayer>,
    pub record: Option<EditRecord>,
    /// Ids of the image and mask, shared by steps that share them (autosave writes each once).
    pub image_id: u64,
    pub mask_id: u64,
}

pub struct Document {
    /// The file it was opened from; None for a pasted image.
    pub source: Option<PathBuf>,
    pub name: String,
    /// The photo as opened (kept when old steps are dropped).
    original: Arc<RgbImage>,
    steps: Vec<Step>,
    position: usize,
    /// The mask being painted; equals the current step's mask outside a stroke.
    pub mask: MaskLayer,
    next_id: u64,
    /// Bumped on every change, so autosave and "unsaved changes" can tell.
    pub revision: u64,
    pub saved_revision: u64,
}

impl Document {
    pub fn new(image: RgbImage, source: Option<PathBuf>, name: String) -> Self {
        let mask = MaskLayer::new(image.width, image.height);
        let original = Arc::new(image);
        let first = Step {
            kind: StepKind::Open,
            label: format!("Open {name}"),
            image: original.clone(),
            mask: Arc::new(mask.clone()),
            record: None,
            image_id: 0,
            mask_id: 1,
        };
        Self { source, name, original, steps: vec![first], position: 0, mask, next_id: 2, revision: 0, saved_revision: 0 }
    }

    /// Rebuilds a document from saved steps (autosave restore).
    pub fn from_steps(source: Option<PathBuf>, name: String, steps: Vec<Step>, position: usize) -> Option<Self> {
        let mask = (*steps.get(position)?.mask).clone();
        let original = steps[0].image.clone();
        let next_id = steps.iter().map(|s| s.image_id.max(s.mask_id)).max().unwrap_or(0) + 1;
        Some(Self { source, name, original, steps, position, mask, next_id, revision: 1, saved_revision: 0 })
    }

    pub fn current(&self) -> &Step {
        &self.steps[self.position]
    }

    pub fn image(&self) -> &Arc<RgbImage> {
        &self.current().image
    }

    /// The photo as opened.
    pub fn original(&self) -> &Arc<RgbImage> {
        &self.original
    }

    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    pub fn position(&self) -> usize {
        self.position
    }

    pub fn has_unsaved_changes(&self) -> bool {
        self.revision != self.saved_revision
    }

    fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn push(&mut self, mut step: Step) {
        self.steps.truncate(self.position + 1);
        if step.image_id == u64::MAX {
            step.image_id = self.fresh_id();
        }
        if step.mask_id == u64::MAX {
            step.mask_id = self.fresh_id();
        }
        self.steps.push(step);
        if self.steps.len() > MAX_STEPS {
            self.steps.remove(0);
        }
        self.position = self.steps.len() - 1;
        self.revision += 1;
    }

    /// Records the working mask as a step ("Brush stroke", "Invert mask"...). No step when the
    /// mask did not change.
    pub fn commit_mask(&mut self, label: &str) {
        if self.mask.data == self.current().mask.data {
            return;
        }
        let current = self.current();
        let step = Step {
            kind: StepKind::Mask,
            label: label.to_string(),
            image: current.image.clone(),
            mask: Arc::new(self.mask.clone()),
            record: None,
            image_id: current.image_id,
            mask_id: u64::MAX,
        };
        self.push(step);
    }

    /// Records an edit's result. The mask is kept when the size did not change (so the user can
    /// rerun with another tool) and resized with the image otherwise; `clear_mask` starts the
    /// new step with an empty one (after an object removal the filled hole should be visible).
    pub fn commit_edit(&mut self, image: Arc<RgbImage>, record: EditRecord, clear_mask: bool) {
        let current = self.current();
        let same_size = (image.width, image.height) == (current.image.width, current.image.height);
        let (mask, mask_id) = if clear_mask {
            (Arc::new(MaskLayer::new(image.width, image.height)), u64::MAX)
        } else if same_size {
            (current.mask.clone(), current.mask_id)
        } else {
            (Arc::new(current.mask.resized(image.width, image.height)), u64::MAX)
        };
        let step = Step {
            kind: StepKind::Edit,
            label: record.tool.clone(),
            image,
            mask,
            record: Some(record),
            image_id: u64::MAX,
            mask_id,
        };
        self.push(step);
        self.mask = (*self.current().mask).clone();
    }

    /// Shows step `index` (undo/redo/history click); the steps after it stay for redo.
    pub fn go_to(&mut self, index: usize) -> bool {
        if index >= self.steps.len() || index == self.position {
            return false;
        }
        self.position = index;
        self.mask = (*self.current().mask).clone();
        self.revision += 1;
        true
    }

    pub fn undo(&mut self) -> bool {
        self.position > 0 && self.go_to(self.position - 1)
    }

    pub fn redo(&mut self) -> bool {
        self.go_to(self.position + 1)
    }

    pub fn can_undo(&self) -> bool {
        self.position > 0
    }

    pub fn can_redo(&self) -> bool {
        self.position + 1 < self.steps.len()
    }

    /// The edits that made the current image, oldest first (saved into exported files).
    pub fn edit_records(&self) -> Vec<EditRecord> {
        self.steps[..=self.position].iter().filter_map(|s| s.record.clone()).collect()
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::EditRecord;

    pub fn record(tool: &str) -> EditRecord {
        EditRecord {
            tool: tool.into(),
            adapters: prism_engine::mix::Mix::single(tool),
            strength: 1.0,
            backend: prism_engine::backends::BackendKind::Reference,
            device: "cpu".into(),
            precision: prism_engine::backends::Precision::Int8,
            exposure: None,
            blur_size: None,
            deconvolved: false,
            noise_level: None,
            texture: None,
            model: String::new(),
            profile: String::new(),
            version: String::new(),
            switch_ms: 0.0,
            forward_ms: 1.0,
            total_ms: 1.0,
            prompt: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::record;
    use super::*;

    #[test]
    fn mask_and_edit_steps_undo_and_redo() {
        let mut doc = Document::new(RgbImage::new(8, 8), None, "test".into());
        doc.commit_mask("nothing changed");
        assert_eq!(doc.steps().len(), 1);
        doc.mask.fill_rect((0.0, 0.0), (4.0, 4.0), false);
        doc.commit_mask("Rectangle");
        let mut edited = RgbImage::new(8, 8);
        edited.data.fill(0.5);
        doc.commit_edit(Arc::new(edited), record("Denoise"), false);
        assert_eq!(doc.steps().len(), 3);
        assert_eq!(doc.image().data[0], 0.5);
        assert!(!doc.mask.is_empty(), "the mask survives an edit of the same size");
        assert!(doc.undo());
        assert_eq!(doc.image().data[0], 0.0);
        assert!(!doc.mask.is_empty());
        assert!(doc.undo());
        assert!(doc.mask.is_empty());
        assert!(!doc.undo());
        assert!(doc.redo() && doc.redo());
        assert_eq!(doc.image().data[0], 0.5);
        // A new step after an undo drops the redo branch.
        doc.undo();
        doc.mask.clear();
        doc.commit_mask("Clear mask");
        assert!(!doc.can_redo());
        assert_eq!(doc.edit_records().len(), 0);
    }

    #[test]
    fn an_upscale_resizes_the_mask_and_history_is_bounded() {
        let mut doc = Document::new(RgbImage::new(8, 8), None, "test".into());
        doc.commit_edit(Arc::new(RgbImage::new(16, 16)), record("Upscale"), false);
        assert_eq!((doc.mask.width, doc.mask.height), (16, 16));
        doc.mask.fill_rect((0.0, 0.0), (4.0, 4.0), false);
        doc.commit_mask("Rectangle");
        doc.commit_edit(Arc::new(RgbImage::new(16, 16)), record("Remove object"), true);
        assert!(doc.mask.is_empty());
        doc.undo();
        assert!(!doc.mask.is_empty(), "undo brings the mask back");
        for i in 0..MAX_STEPS + 5 {
            doc.mask.dab(i as f32 % 16.0, 3.0, super::super::mask::Brush { radius: 1.0, hardness: 1.0, erase: i % 2 == 1 });
            doc.commit_mask("Brush stroke");
        }
        assert!(doc.steps().len() <= MAX_STEPS);
        assert_eq!(doc.position(), doc.steps().len() - 1);
    }
}
