//! The tool the next run uses: picked from the palette (a typed request chooses in `prompts`).

use super::PrismApp;

impl PrismApp {
    pub(super) fn pick_tool(&mut self, name: String) {
        self.tool.mix = vec![(name, 1.0)];
        self.tool.prompt_outcome = None;
        self.tool.picked = true;
    }
}
