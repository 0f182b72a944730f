//! Who made a file in a Debian package and under which licence, read from the package's
//! machine-readable `copyright` file (DEP-5): stanzas of `Files:` globs with `Copyright:` and
//! `License:`, where the last stanza whose globs match a file is the one that applies.

/// One `Files:` stanza.
#[derive(Clone, Debug, PartialEq)]
pub struct Stanza {
    pub patterns: Vec<String>,
    /// The `Copyright:` lines joined by "; ".
    pub copyright: String,
    /// The licence's short name (the first line of `License:`).
    pub licence: String,
}

/// The `Files:` stanzas of a DEP-5 copyright file, in order.
pub fn parse(text: &str) -> Vec<Stanza> {
    let mut stanzas = Vec::new();
    for block in text.split("\n\n") {
        let mut fields: Vec<(String, Vec<String>)> = Vec::new();
        for line in block.lines() {
            if line.starts_with([' ', '\t']) {
                if let Some((_, values)) = fields.last_mut() {
                    values.push(line.trim().to_string());
                }
            } else if let Some((name, value)) = line.split_once(':') {
                fields.push((name.trim().to_lowercase(), vec![value.trim().to_string()]));
            }
        }
        let field = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        let Some(files) = field("files") else { continue };
        stanzas.push(Stanza {
            patterns: files.iter().flat_map(|line| line.split_whitespace().map(str::to_string)).collect(),
            copyright: field("copyright")
                .unwrap_or_default()
                .into_iter()
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("; "),
            licence: field("license").and_then(|v| v.into_iter().next()).unwrap_or_default(),
        });
    }
    stanzas
}

/// The stanza that applies to `path` (relative to the package's source tree): the last match.
pub fn credit_for<'a>(stanzas: &'a [Stanza], path: &str) -> Option<&'a Stanza> {
    stanzas.iter().rev().find(|s| s.patterns.iter().any(|p| glob_matches(p, path)))
}

/// DEP-5 globs: `*` matches any run of characters (slashes included), `?` one character.
fn glob_matches(pattern: &str, path: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (pattern.chars().collect(), path.chars().collect());
    // matches[i][j]: p[..i] matches s[..j].
    let mut matches = vec![vec![false; s.len() + 1]; p.len() + 1];
    matches[0][0] = true;
    for i in 1..=p.len() {
        for j in 0..=s.len() {
            matches[i][j] = match p[i - 1] {
                '*' => matches[i - 1][j] || (j > 0 && matches[i][j - 1]),
                '?' => j > 0 && matches[i - 1][j - 1],
                c => j > 0 && s[j - 1] == c && matches[i - 1][j - 1],
            };
        }
    }
    matches[p.len()][s.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: example

Files: *
Copyright: 2014 Ada
           2015 Grace
License: GPL-3+

Files: src/activities/erase/resource/cat?.jpg
       src/activities/animals/*
Copyright: Erwan
License: GPL-3+
 The licence text follows.

Files: src/activities/animals/koala.jpg
Copyright: Jeff
License: public-domain
Comment: https://commons.wikimedia.org/";

    #[test]
    fn the_last_matching_stanza_names_author_and_licence() {
        let stanzas = parse(SAMPLE);
        assert_eq!(stanzas.len(), 3, "the header paragraph is not a Files stanza");
        let credit = |path: &str| credit_for(&stanzas, path).map(|s| (s.copyright.as_str(), s.licence.as_str()));
        assert_eq!(credit("src/activities/animals/koala.jpg"), Some(("Jeff", "public-domain")));
        assert_eq!(credit("src/activities/animals/deep/owl.jpg"), Some(("Erwan", "GPL-3+")));
        assert_eq!(credit("src/activities/erase/resource/cat1.jpg"), Some(("Erwan", "GPL-3+")));
        assert_eq!(credit("src/activities/erase/resource/cat12.jpg"), Some(("2014 Ada; 2015 Grace", "GPL-3+")));
        assert_eq!(credit("README"), Some(("2014 Ada; 2015 Grace", "GPL-3+")));
        assert!(credit_for(&parse("Files: docs/*\nCopyright: X\nLicense: MIT"), "src/main.rs").is_none());
    }
}
