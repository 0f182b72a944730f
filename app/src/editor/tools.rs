//! The tool the next run uses: picked from the palette or chosen from a typed request.

use prism_text::keywords as prompt;

use super::PrismApp;

impl PrismApp {
    pub(super) fn pick_tool(&mut self, name: String) {
        self.tool.mix = vec![(name, 1.0)];
        self.tool.prompt_matches = None;
        self.tool.picked = true;
    }

    /// Chooses tools and weights from the typed request.
    pub(super) fn apply_prompt(&mut self) {
        let metas: Vec<_> = self.tools.iter().map(|t| t.meta.clone()).collect();
        let matches = prompt::match_prompt(&self.tool.prompt, &metas);
        if !matches.is_empty() {
            self.tool.mix = matches.iter().map(|m| (m.name.clone(), m.weight)).collect();
            self.tool.picked = true;
        }
        self.tool.prompt_matches = Some(matches);
    }
}
