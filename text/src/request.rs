//! What a typed request says besides which tool: its separate parts ("denoise it, then sharpen"),
//! the parts it negates ("don't sharpen") and how strongly ("a little brighter"). Plain word
//! lists, English only, because the encoder is English only and these words are few.

/// Longest prompt read, in characters: a request is a sentence or two, not a document.
pub const MAX_PROMPT_CHARS: usize = 500;

/// Words that start a new part of a request.
const SEPARATORS: &[&str] = &["and", "then", "also", "plus", "but", "while", "after", "afterwards", "&"];
/// Colours joined by "and" name one thing ("black and white", "teal and orange"), not two parts.
const COLOURS: &[&str] = &[
    "black", "white", "grey", "gray", "teal", "orange", "red", "green", "blue", "yellow", "pink", "magenta", "purple", "brown",
    "gold", "golden", "silver", "salt", "pepper",
];

/// Words that negate their part ("don't" is split by the tokenizer, so both spellings).
const NEGATIONS: &[&str] =
    &["don't", "dont", "do not", "not", "no", "never", "without", "avoid", "leave out", "skip", "no need to"];
/// Words that ask for a light touch.
const GENTLE: &[&str] = &[
    "a little", "a bit", "slightly", "a touch", "subtle", "subtly", "gently", "lightly", "somewhat", "mildly", "a tad", "just a",
];

/// How strongly a part asks for its edit: the tool's weight in the mix.
pub const GENTLE_WEIGHT: f32 = 0.5;
pub const FULL_WEIGHT: f32 = 1.0;

/// One part of a request, as the router reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct Part {
    /// The words to route, with the negation and intensity words taken out.
    pub text: String,
    pub negated: bool,
    pub weight: f32,
}

/// The prompt, trimmed, or why it cannot be read.
pub fn check_prompt(prompt: &str) -> Result<&str, String> {
    let trimmed = prompt.trim();
    if trimmed.is_empty() {
        return Err("type what you want done, e.g. \"remove the noise\"".into());
    }
    let chars = trimmed.chars().count();
    if chars > MAX_PROMPT_CHARS {
        return Err(format!(
            "the prompt is {chars} characters long; describe the edit in at most {MAX_PROMPT_CHARS} (a sentence or two)"
        ));
    }
    if !trimmed.chars().any(char::is_alphabetic) {
        return Err("the prompt has no words in it; describe the edit, e.g. \"make it sharper\"".into());
    }
    Ok(trimmed)
}

/// The prompt cut at separators (commas, semicolons, "and", "then", ...), each part with its
/// negation and intensity read off. A part left with no words is dropped.
pub fn parts(prompt: &str) -> Vec<Part> {
    let lower = prompt.to_lowercase().replace(['’', '‘'], "'");
    let mut pieces = vec![String::new()];
    let words: Vec<&str> = lower.split_whitespace().collect();
    let bare_word = |word: &str| word.trim_matches(|c: char| !c.is_alphanumeric() && c != '\'' && c != '&').to_string();
    for (index, word) in words.iter().enumerate() {
        let bare = bare_word(word);
        let bare = bare.as_str();
        let ends_piece = word.ends_with([',', ';', '.', '!', '?', ':']);
        let between_colours = matches!(bare, "and" | "&")
            && index > 0
            && COLOURS.contains(&bare_word(words[index - 1]).as_str())
            && !words[index - 1].ends_with([',', ';', '.', '!', '?', ':'])
            && words.get(index + 1).is_some_and(|next| COLOURS.contains(&bare_word(next).as_str()));
        if SEPARATORS.contains(&bare) && !between_colours {
            pieces.push(String::new());
            continue;
        }
        let current = pieces.last_mut().expect("one piece at least");
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(bare);
        if ends_piece {
            pieces.push(String::new());
        }
    }
    pieces.iter().flat_map(|piece| split_at_negation(piece)).filter_map(|piece| read_part(&piece)).collect()
}

/// "brighten it without removing noise": a negation inside a part negates what follows it only.
fn split_at_negation(piece: &str) -> Vec<String> {
    let padded = format!(" {piece} ");
    let first = NEGATIONS.iter().filter_map(|cue| padded.find(&format!(" {cue} "))).min();
    match first {
        Some(at) if !padded[..at].trim().is_empty() => vec![padded[..at].trim().to_string(), padded[at..].trim().to_string()],
        _ => vec![piece.to_string()],
    }
}

fn read_part(piece: &str) -> Option<Part> {
    let mut text = format!(" {piece} ");
    let mut negated = false;
    for cue in NEGATIONS {
        negated |= take_phrase(&mut text, cue);
    }
    let mut weight = FULL_WEIGHT;
    for cue in GENTLE {
        if take_phrase(&mut text, cue) {
            weight = GENTLE_WEIGHT;
        }
    }
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    text.chars().any(char::is_alphabetic).then_some(Part { text, negated, weight })
}

/// Removes every whole-word occurrence of `phrase` from ` text ` (padded with spaces).
fn take_phrase(text: &mut String, phrase: &str) -> bool {
    let needle = format!(" {phrase} ");
    let mut found = false;
    while let Some(at) = text.find(&needle) {
        text.replace_range(at..at + needle.len(), " ");
        found = true;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(text: &str, negated: bool, weight: f32) -> Part {
        Part { text: text.into(), negated, weight }
    }

    #[test]
    fn a_request_splits_at_separators_and_keeps_negation_and_intensity_per_part() {
        assert_eq!(parts("Remove the noise"), vec![part("remove the noise", false, 1.0)]);
        assert_eq!(parts("convert it to black and white"), vec![part("convert it to black and white", false, 1.0)]);
        assert_eq!(
            parts("teal & orange and more contrast"),
            vec![part("teal & orange", false, 1.0), part("more contrast", false, 1.0)]
        );
        assert_eq!(
            parts("clean up the grain, then sharpen it a little"),
            vec![part("clean up the grain", false, 1.0), part("sharpen it", false, 0.5)]
        );
        assert_eq!(parts("brighten it but don't sharpen"), vec![part("brighten it", false, 1.0), part("sharpen", true, 1.0)]);
        assert_eq!(
            parts("Don’t touch the colours; slightly brighter."),
            vec![part("touch the colours", true, 1.0), part("brighter", false, 0.5)]
        );
        assert_eq!(
            parts("make it brighter without removing noise"),
            vec![part("make it brighter", false, 1.0), part("removing noise", true, 1.0)]
        );
        assert!(parts(", and then ,").is_empty());
    }

    #[test]
    fn empty_huge_and_wordless_prompts_are_refused_with_a_reason() {
        assert!(check_prompt("   ").unwrap_err().contains("type what you want"));
        let huge = "sharpen ".repeat(100_000 / 8);
        assert!(check_prompt(&huge).unwrap_err().contains("characters long"));
        assert!(check_prompt("!!! 123").unwrap_err().contains("no words"));
        assert_eq!(check_prompt("  make it sharper "), Ok("make it sharper"));
        assert_eq!(check_prompt("entferne das Rauschen"), Ok("entferne das Rauschen"));
    }
}
