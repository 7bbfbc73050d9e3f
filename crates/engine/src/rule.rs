//! The rule model and rule-file loading.
//!
//! A rule file is YAML with a top-level `rules:` list. Loading is strict: unknown keys, duplicate
//! ids, bad regexes, rules without examples and examples that fail are all refused, each with
//! file:line and the rule id, and every problem in every file is reported at once.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::error::{RuleError, RuleErrors};

/// Sensitivity grade after GB/T 43697: `general` < `important` < `core`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    General,
    Important,
    Core,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::General => "general",
            Level::Important => "important",
            Level::Core => "core",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happens to a finding. Ordered by severity, so the strongest of several actions wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Leave the value as it is and record nothing.
    Allow,
    /// Leave the value, but record the finding (shadow mode).
    Alert,
    /// Keep head and tail, replace the middle with `*`.
    Mask,
    /// Replace with the rule's label, e.g. `[身份证号]`.
    Redact,
    /// Replace with a keyed HMAC token, stable per key.
    Hash,
    /// Refuse the whole request or response.
    Block,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Alert => "alert",
            Action::Mask => "mask",
            Action::Redact => "redact",
            Action::Hash => "hash",
            Action::Block => "block",
        }
    }

    /// Whether the action rewrites the bytes of the value.
    pub fn rewrites(self) -> bool {
        matches!(self, Action::Mask | Action::Redact | Action::Hash)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How `mask` keeps part of the value. Counts are characters (letters, digits, CJK), separators
/// are kept as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskStyle {
    #[serde(default = "default_head")]
    pub keep_head: usize,
    #[serde(default = "default_tail")]
    pub keep_tail: usize,
    /// Keep everything from this character on (e.g. `@` keeps an e-mail's domain).
    #[serde(default)]
    pub keep_from: Option<char>,
}

fn default_head() -> usize {
    3
}
fn default_tail() -> usize {
    4
}

impl Default for MaskStyle {
    fn default() -> Self {
        Self { keep_head: default_head(), keep_tail: default_tail(), keep_from: None }
    }
}

/// A rule's display name, Chinese and/or English.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Name {
    #[serde(default)]
    pub zh: Option<String>,
    #[serde(default)]
    pub en: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDetector {
    #[serde(default)]
    pub builtin: Option<String>,
    #[serde(default)]
    pub keywords: Option<Vec<String>>,
    #[serde(default)]
    pub regex: Option<String>,
    #[serde(default)]
    pub validator: Option<String>,
    #[serde(default)]
    pub case_insensitive: bool,
    #[serde(default)]
    pub not_followed_by: Vec<String>,
    #[serde(default)]
    pub not_preceded_by: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Examples {
    #[serde(default, rename = "match")]
    pub matches: Vec<String>,
    #[serde(default)]
    pub no_match: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    pub id: String,
    pub name: Name,
    #[serde(default)]
    pub description: Option<String>,
    pub category: String,
    pub level: Level,
    pub detector: RawDetector,
    #[serde(default)]
    pub context: Vec<String>,
    #[serde(default)]
    pub context_required: bool,
    pub action: Action,
    #[serde(default)]
    pub mask: Option<MaskStyle>,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub examples: Option<Examples>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    rules: Vec<serde_yaml_ng::Value>,
}

/// A raw rule plus where it came from.
#[derive(Debug, Clone)]
pub(crate) struct Located {
    pub rule: RawRule,
    pub file: PathBuf,
    pub line: usize,
}

/// Every `*.yaml`/`*.yml` file under `dirs` (recursively, sorted), or the files themselves.
pub fn rule_files(dirs: &[PathBuf]) -> Result<Vec<PathBuf>, RuleErrors> {
    let mut files = Vec::new();
    let mut errs = Vec::new();
    for d in dirs {
        if d.is_file() {
            files.push(d.clone());
            continue;
        }
        if let Err(e) = walk(d, &mut files) {
            errs.push(RuleError::new(d, 0, None, format!("cannot read rule directory: {e}")));
        }
    }
    files.sort();
    files.dedup();
    if errs.is_empty() { Ok(files) } else { Err(RuleErrors(errs)) }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let p = entry?.path();
        if p.is_dir() {
            walk(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(p);
        }
    }
    Ok(())
}

/// Parse one rule file. Errors carry file:line; a broken rule does not hide the others.
pub(crate) fn parse_file(file: &Path, text: &str, out: &mut Vec<Located>, errs: &mut Vec<RuleError>) {
    let raw: RawFile = match serde_yaml_ng::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            let line = e.location().map_or(0, |l| l.line());
            errs.push(RuleError::new(file, line, None, clean_yaml_error(&e)));
            return;
        }
    };
    let starts = item_lines(text);
    let mut search_from = 0;
    for (i, value) in raw.rules.into_iter().enumerate() {
        let id_hint = value.get("id").and_then(|v| v.as_str()).map(str::to_string);
        let line = starts.get(i).copied().unwrap_or(0);
        search_from = search_from.max(line);
        match serde_yaml_ng::from_value::<RawRule>(value) {
            Ok(rule) => out.push(Located { rule, file: file.to_path_buf(), line }),
            Err(e) => {
                // from_value has no positions: find the offending key in this rule's lines
                let msg = clean_yaml_error(&e);
                let end = starts.get(i + 1).copied().unwrap_or(usize::MAX);
                let key_line = offending_key(&msg).and_then(|k| find_key_line(text, k, line, end)).unwrap_or(line);
                errs.push(RuleError::new(file, key_line, id_hint, msg));
            }
        }
    }
}

/// Line numbers (1-based) where the items of the top-level `rules:` list start.
fn item_lines(text: &str) -> Vec<usize> {
    let mut indent: Option<usize> = None;
    let mut in_rules = false;
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let trimmed = l.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let ind = l.len() - trimmed.len();
        if ind == 0 {
            in_rules = trimmed.starts_with("rules:");
            continue;
        }
        if !in_rules {
            continue;
        }
        if trimmed.starts_with("- ") || trimmed == "-" {
            match indent {
                None => {
                    indent = Some(ind);
                    out.push(i + 1);
                }
                Some(x) if x == ind => out.push(i + 1),
                _ => {}
            }
        }
    }
    out
}

fn offending_key(msg: &str) -> Option<&str> {
    let rest = msg.split("field `").nth(1)?;
    rest.split('`').next()
}

fn find_key_line(text: &str, key: &str, from: usize, to: usize) -> Option<usize> {
    text.lines().enumerate().skip(from.saturating_sub(1)).take(to.saturating_sub(from)).find_map(|(i, l)| {
        let t = l.trim_start().trim_start_matches("- ");
        t.strip_prefix(key).filter(|r| r.trim_start().starts_with(':')).map(|_| i + 1)
    })
}

fn clean_yaml_error(e: &serde_yaml_ng::Error) -> String {
    let s = e.to_string();
    // the location is reported separately
    match s.find(" at line ") {
        Some(p) => s[..p].to_string(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_lines_finds_each_rule() {
        let text =
            "# c\nrules:\n  - id: a\n    name: {en: A}\n  - id: b\n    detector:\n      keywords:\n        - x\n";
        assert_eq!(item_lines(text), vec![3, 5]);
    }

    #[test]
    fn unknown_key_is_reported_with_its_line() {
        let text = "rules:\n  - id: a.b\n    name: {en: A}\n    category: c\n    level: core\n    detector: {keywords: [x]}\n    action: mask\n    colour: red\n";
        let mut out = Vec::new();
        let mut errs = Vec::new();
        parse_file(Path::new("r.yaml"), text, &mut out, &mut errs);
        assert!(out.is_empty());
        assert_eq!(errs.len(), 1);
        let e = errs[0].to_string();
        assert!(e.starts_with("r.yaml:8: rule a.b:"), "{e}");
        assert!(e.contains("colour"), "{e}");
    }
}
