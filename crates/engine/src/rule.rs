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
    /// Keep a leading part found by meaning rather than by count: the surname of a name
    /// (`张*`, `欧阳**`), or the divisions of an address down to the district (`河南省郑州市金水区****`).
    #[serde(default)]
    pub keep: Option<Keep>,
}

/// A leading part `mask` keeps by meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Keep {
    Surname,
    Division,
}

fn default_head() -> usize {
    3
}
fn default_tail() -> usize {
    4
}

impl Default for MaskStyle {
    fn default() -> Self {
        Self { keep_head: default_head(), keep_tail: default_tail(), keep_from: None, keep: None }
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
    /// Values standing in a field, as a spreadsheet column or a form field holds them.
    #[serde(default)]
    pub in_field: Vec<FieldExamples>,
    /// Values in form-urlencoded data (a query string, a form body), where `+` is a space:
    /// `{match: ["tel=138+0013+8000"]}`.
    #[serde(default)]
    pub in_form: FormExamples,
}

/// Examples read as form-urlencoded data.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormExamples {
    #[serde(default, rename = "match")]
    pub matches: Vec<String>,
    #[serde(default)]
    pub no_match: Vec<String>,
}

/// Examples of values in one field: `{field: xm, match: [张伟], no_match: [张家界旅游局]}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldExamples {
    pub field: String,
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
    /// Field names (keys, column headers, elements, form fields) that raise the rule, or where a
    /// name or address detector looks; ASCII case folded, `*` at either end as a glob.
    #[serde(default)]
    pub fields: Vec<String>,
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

/// Parse one rule file. Errors carry file:line (every unknown key and bad value at its own line);
/// a broken rule does not hide the others.
pub(crate) fn parse_file(file: &Path, text: &str, out: &mut Vec<Located>, errs: &mut Vec<RuleError>) {
    use marked_yaml::Node;
    let node = match crate::yaml::parse(text) {
        Ok(n) => n,
        Err(e) => {
            errs.push(RuleError::new(file, e.line, None, e.msg));
            return;
        }
    };
    let line = |n: &Node| n.span().start().map_or(0, |m| m.line());
    let Some(top) = node.as_mapping() else { return };
    for (k, _) in top.iter().filter(|(k, _)| k.as_str() != "rules") {
        let at = k.span().start().map_or(0, |m| m.line());
        errs.push(RuleError::new(file, at, None, format!("unknown field `{}`, expected `rules`", k.as_str())));
    }
    let Some(rules) = top.get_sequence("rules") else {
        errs.push(RuleError::new(file, line(&node), None, "missing field `rules` (a list of rules)"));
        return;
    };
    for item in rules.iter() {
        let id_hint = item.as_mapping().and_then(|m| m.get_scalar("id")).map(|s| s.as_str().to_string());
        match crate::yaml::from_node::<RawRule>(item) {
            Ok(rule) => out.push(Located { rule, file: file.to_path_buf(), line: line(item) }),
            Err(es) => {
                for e in es {
                    errs.push(RuleError::new(file, e.line, id_hint.clone(), e.msg));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Every problem of every rule, each at its own line; good rules still load.
    #[test]
    fn every_problem_in_a_rule_file_at_its_line() {
        let text = "\
rules:
  - id: a.b
    name: {en: A}
    category: c
    level: core
    detector: {keywords: [x]}
    action: mask
    colour: red
    flavour: sweet
  - id: c.d
    name: {en: C}
    category: c
    level: severe
    detector: {keywords: [y]}
    action: mask
  - id: e.f
    name: {en: E}
    category: c
    level: core
    detector: {keywords: [z]}
    action: mask
    examples: {match: [z]}
";
        let mut out = Vec::new();
        let mut errs = Vec::new();
        parse_file(Path::new("r.yaml"), text, &mut out, &mut errs);
        let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
        assert_eq!(lines, [8, 9, 13], "{errs:?}");
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].rule.id, "e.f");
        assert_eq!(out[0].line, 16);
    }
}
