//! Rule-loading errors: every one names the file, the line and (when known) the rule id.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in one rule file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem is about the file as a whole
    pub line: usize,
    pub rule: Option<String>,
    pub msg: String,
}

impl RuleError {
    pub fn new(file: &Path, line: usize, rule: Option<String>, msg: impl Into<String>) -> Self {
        Self { file: file.to_path_buf(), line, rule, msg: msg.into() }
    }
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if let Some(r) = &self.rule {
            write!(f, ": rule {r}")?;
        }
        write!(f, ": {}", self.msg)
    }
}

/// Every problem found while loading a rule set (never empty when returned as an error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleErrors(pub Vec<RuleError>);

impl fmt::Display for RuleErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_lines(f, &self.0)
    }
}

/// One item per line (used by every error list).
pub fn write_lines<T: fmt::Display>(f: &mut fmt::Formatter<'_>, items: &[T]) -> fmt::Result {
    for (i, e) in items.iter().enumerate() {
        if i > 0 {
            writeln!(f)?;
        }
        write!(f, "{e}")?;
    }
    Ok(())
}

impl std::error::Error for RuleErrors {}
