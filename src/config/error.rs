//! Configuration errors, and where in the file they are: the loading context that collects every
//! problem with its file, line and key.

use std::fmt;
use std::path::{Path, PathBuf};

/// One configuration problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub key: String,
    pub msg: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.msg)
    }
}

/// Every problem found (never empty when returned as an error).
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::engine::error::write_lines(f, &self.0)
    }
}

impl std::error::Error for ConfigErrors {}

pub(crate) struct Ctx<'a> {
    pub(crate) file: &'a Path,
    pub(crate) text: &'a str,
    pub(crate) base: PathBuf,
    pub(crate) errs: Vec<ConfigError>,
    /// Every node's line, by path (from the YAML parse).
    pub(crate) lines: crate::engine::yaml::Lines,
    /// The item being compiled (`routes[2]`): keys are looked up inside it.
    pub(crate) scope: String,
}

impl Ctx<'_> {
    /// Report a problem at the line where `key` (optionally with `value`) is, inside the item
    /// being compiled; the key is reported with its full path (`routes[2].policy`).
    pub(crate) fn err(&mut self, key: &str, value: Option<&str>, msg: impl Into<String>) {
        let full =
            if self.scope.is_empty() || key.contains('.') { key.to_string() } else { format!("{}.{key}", self.scope) };
        let line = self
            .lines
            .find(&self.scope, key.rsplit('.').next().unwrap_or(key), value)
            .or_else(|| Some(self.lines.line(&full)).filter(|l| *l > 0 && value.is_none()))
            .or_else(|| Some(self.lines.line(&self.scope)).filter(|l| *l > 0 && !self.scope.is_empty()))
            .unwrap_or_else(|| find_line(self.text, key, value));
        self.errs.push(ConfigError { file: self.file.to_path_buf(), line, key: full, msg: msg.into() });
    }

    pub(crate) fn err_at(&mut self, line: usize, key: &str, msg: impl Into<String>) {
        self.errs.push(ConfigError { file: self.file.to_path_buf(), line, key: key.to_string(), msg: msg.into() });
    }

    pub(crate) fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() { p.to_path_buf() } else { self.base.join(p) }
    }

    pub(crate) fn readable(&mut self, key: &str, p: &str) -> Option<PathBuf> {
        let path = self.path(p);
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => Some(path),
            Ok(_) => {
                self.err(key, Some(p), format!("{} is not a file", path.display()));
                None
            }
            Err(e) => {
                self.err(key, Some(p), format!("cannot read {}: {e}", path.display()));
                None
            }
        }
    }
}

/// Line (1-based) of the first `key:` line whose value contains `value`, else of the first `key:`.
/// The line where route `id` starts (`- id: x` or `- {id: x, …}` under `routes:`); 0 if not found.
pub(crate) fn route_line(text: &str, id: &str) -> usize {
    let mut in_routes = false;
    for (i, l) in text.lines().enumerate() {
        if !l.starts_with([' ', '-', '#']) && !l.is_empty() {
            in_routes = l.starts_with("routes:");
            continue;
        }
        let t = l.trim_start().trim_start_matches('-').trim_start().trim_start_matches('{').trim_start();
        if in_routes {
            if let Some(rest) = t.strip_prefix("id:") {
                let v = rest.trim_start();
                let v = v.trim_start_matches(['"', '\'']);
                if v.strip_prefix(id).is_some_and(|r| r.is_empty() || r.starts_with([',', '}', ' ', '"', '\''])) {
                    return i + 1;
                }
            }
        }
    }
    0
}

pub(crate) fn find_line(text: &str, key: &str, value: Option<&str>) -> usize {
    let last = key.rsplit('.').next().unwrap_or(key);
    let last = last.split('[').next().unwrap_or(last);
    let mut first = 0;
    for (i, l) in text.lines().enumerate() {
        let t = l.trim_start().trim_start_matches("- ").trim_start();
        if let Some(rest) = t.strip_prefix(last) {
            if rest.trim_start().starts_with(':') {
                if first == 0 {
                    first = i + 1;
                }
                if value.is_none_or(|v| rest.contains(v)) {
                    return i + 1;
                }
            }
        }
        if let Some(v) = value {
            if first == 0 && !v.is_empty() && l.contains(v) && t.starts_with("- ") {
                return i + 1;
            }
        }
    }
    if let Some(v) = value {
        if let Some(i) = text.lines().position(|l| !v.is_empty() && l.contains(v)) {
            return i + 1;
        }
    }
    first
}
