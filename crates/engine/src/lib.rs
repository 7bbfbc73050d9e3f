//! The detection engine: rule model and loading, the compiled [`RuleSet`], normalization, matching,
//! validators, streaming and transforms.
//!
//! It owns no I/O beyond reading rule files and knows nothing of HTTP, Pingora, tokio or metrics:
//! it returns data, and its callers log and count. That keeps it benchmarkable, fuzzable and
//! reusable by `dlpgate scan`/`mask`.
//!
//! One scan = normalize → (built-in detectors, one Aho-Corasick pass, one multi-pattern regex pass)
//! → resolve overlaps (longest wins) → context words → map offsets back to the original bytes.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod builtin;
pub mod error;
pub mod fields;
pub(crate) mod keywords;
mod literals;
pub mod normalize;
pub(crate) mod patterns;
mod prefilter;
pub mod rule;
pub mod stream;
pub mod synthetic;
pub mod transform;
pub mod validate;
pub mod yaml;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use builtin::Builtin;
pub use error::{RuleError, RuleErrors};
pub use fields::Place;
pub use rule::{Action, Examples, Keep, Level, MaskStyle, Name};
pub use stream::StreamScanner;
pub use transform::{HashKey, Transformer};

use builtin::Builtins;
use keywords::{Exclusions, KeywordMatcher};
use patterns::PatternMatcher;
use rule::{Located, RawRule};
use validate::Validator;

/// How far (bytes of normalized text) before a value context words are looked for.
pub const CONTEXT_BEFORE: usize = 48;
/// How far after a value context words are looked for.
pub const CONTEXT_AFTER: usize = 16;

/// A compiled rule (read-only once the set is built).
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub name: Name,
    pub description: Option<String>,
    pub category: String,
    pub level: Level,
    pub action: Action,
    pub mask: MaskStyle,
    /// Replacement used by `redact`, e.g. `[身份证号]`.
    pub label: String,
    pub context: Vec<String>,
    pub context_required: bool,
    /// Field names that raise the rule (or, for names and addresses, where the detector looks).
    pub fields: Vec<String>,
    pub examples: Examples,
    context_ac: Option<aho_corasick::AhoCorasick>,
    /// `builtin:NAME`, `keywords` or `regex`
    pub detector: String,
    pub file: PathBuf,
    pub line: usize,
}

impl Rule {
    /// Display name: Chinese, then English, then the id.
    pub fn display_name(&self) -> &str {
        self.name.zh.as_deref().or(self.name.en.as_deref()).unwrap_or(&self.id)
    }
}

/// A candidate accepted by a detector (and its validator), in normalized-text coordinates: what
/// the built-in, keyword and regex passes hand to overlap resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hit {
    pub rule: u32,
    pub start: usize,
    pub end: usize,
}

/// A rule: its index in [`RuleSet::rules`] (not a bare `usize` where rules, routes and
/// departments meet, in the gateway's finding log and decisions).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleId(pub usize);

impl<T> std::ops::Index<RuleId> for [T] {
    type Output = T;
    fn index(&self, r: RuleId) -> &T {
        &self[r.0]
    }
}

/// What a name or address detector worked out about its value that a mask keeping part of it
/// needs again: the bytes of the surname, or of the divisions. [`transform::mask_kept`] uses it
/// only for the mask it was worked out for, and works it out itself otherwise.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Kept {
    #[default]
    Unknown,
    Surname(u16),
    Division(u16),
}

/// One detected value. Offsets are bytes in the original input; `end` is exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding {
    /// Index into [`RuleSet::rules`].
    pub rule: usize,
    pub start: usize,
    pub end: usize,
    /// A context word of the rule was near the value.
    pub context: bool,
    val: (u32, u32),
    kept: Kept,
}

impl Finding {
    /// What its detector worked out for a mask that keeps part of the value (see [`Kept`]).
    pub fn kept(&self) -> Kept {
        self.kept
    }
}

/// The result of a scan, reusable across scans to avoid allocation.
#[derive(Debug, Default)]
pub struct Scan {
    pub findings: Vec<Finding>,
    /// Evaluate context words for every finding (they are always evaluated for rules that
    /// require them). Off by default: the proxy does not need the flag and it costs a pass
    /// around each value.
    pub want_context: bool,
    values: Vec<u8>,
    hits: Vec<Hit>,
    /// hits of the name and address detectors with what they worked out for masking, in order
    kept: Vec<(Hit, Kept)>,
    /// scratch for the built-in detectors (`@` positions, value candidates)
    marks: prefilter::Marks,
    /// scratch for putting the hits in order (see [`resolve_overlaps`])
    merged: Vec<Hit>,
}

thread_local! {
    /// The thread's scan room (see [`Scan::take_room`]).
    static ROOM: std::cell::RefCell<Option<Scan>> = const { std::cell::RefCell::new(None) };
}

/// Rooms larger than this (a huge text's findings) are not kept on the thread.
const MAX_ROOM_KEPT: usize = 4 << 20;

impl Scan {
    /// The calling thread's scan room: the vectors of its last scan, emptied by the next
    /// `scan_at`. Streams and document batches scan one at a time on a thread, so one room
    /// serves them all; nothing is kept per stream between chunks. A nested call (none today)
    /// gets a new room. Give it back with [`Scan::give_room`].
    pub fn take_room() -> Scan {
        let mut scan = ROOM.with(|r| r.borrow_mut().take()).unwrap_or_default();
        scan.want_context = false;
        scan
    }

    /// Keep this scan's room for the thread's next [`Scan::take_room`], unless it grew past
    /// [`MAX_ROOM_KEPT`].
    pub fn give_room(self) {
        if self.room() <= MAX_ROOM_KEPT {
            ROOM.with(|r| *r.borrow_mut() = Some(self));
        }
    }

    /// Bytes of room it holds (what keeping it between scans costs).
    fn room(&self) -> usize {
        use std::mem::size_of;
        self.findings.capacity() * size_of::<Finding>()
            + self.values.capacity()
            + self.hits.capacity() * size_of::<Hit>()
            + (self.kept.capacity() * size_of::<(Hit, Kept)>())
            + self.merged.capacity() * size_of::<Hit>()
            + (self.marks.at.capacity() + self.marks.values.capacity()) * size_of::<usize>()
    }

    /// The normalized value of a finding (decoded, full-width folded, zero-width removed).
    /// Use it for masking and fingerprints; never log it.
    pub fn value(&self, f: &Finding) -> &[u8] {
        self.values.get(f.val.0 as usize..f.val.1 as usize).unwrap_or(&[])
    }
}

/// An immutable, compiled rule set. Cheap to share (`Arc<RuleSet>`); scanning takes `&self`.
#[derive(Debug)]
pub struct RuleSet {
    rules: Vec<Rule>,
    by_id: HashMap<String, usize>,
    builtins: Builtins,
    keywords: Option<KeywordMatcher>,
    patterns: Option<PatternMatcher>,
    /// One literal pass standing in for both of the above, when it can.
    shared: Option<literals::SharedPass>,
    /// Rules with fields: names, addresses, and rules raised by the field a value stands in.
    fields: fields::Fields,
    /// How each rule relates to fields.
    field_role: Vec<FieldRole>,
}

/// How a rule relates to fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldRole {
    None,
    /// Its own detector; a finding in one of its fields counts as context.
    Raised,
    /// Names and addresses: found by their field or label.
    Found,
}

/// Outcome of running every rule's examples.
#[derive(Debug, Default)]
pub struct ExampleReport {
    /// (rule id, examples run, failures)
    pub per_rule: Vec<(String, usize, Vec<String>)>,
}

impl ExampleReport {
    pub fn total(&self) -> usize {
        self.per_rule.iter().map(|r| r.1).sum()
    }
    pub fn failures(&self) -> usize {
        self.per_rule.iter().map(|r| r.2.len()).sum()
    }
}

impl RuleSet {
    /// Load every rule file under `dirs`, compile, and check every rule's examples.
    pub fn load(dirs: &[PathBuf]) -> Result<RuleSet, RuleErrors> {
        let files = rule::rule_files(dirs)?;
        let mut sources = Vec::new();
        let mut errs = Vec::new();
        for f in files {
            match std::fs::read_to_string(&f) {
                Ok(t) => sources.push((f, t)),
                Err(e) => errs.push(RuleError::new(&f, 0, None, format!("cannot read rule file: {e}"))),
            }
        }
        if !errs.is_empty() {
            return Err(RuleErrors(errs));
        }
        Self::from_sources(&sources)
    }

    /// Compile rule files given as (path, YAML text). Every problem is reported at once.
    pub fn from_sources(sources: &[(PathBuf, String)]) -> Result<RuleSet, RuleErrors> {
        let mut located = Vec::new();
        let mut errs = Vec::new();
        for (path, text) in sources {
            rule::parse_file(path, text, &mut located, &mut errs);
        }
        let set = Self::compile(located, &mut errs);
        if !errs.is_empty() {
            return Err(RuleErrors(errs));
        }
        let Some(set) = set else {
            return Err(RuleErrors(vec![RuleError::new(Path::new("<rules>"), 0, None, "rule set did not compile")]));
        };
        let report = set.test_examples();
        for (id, _, fails) in &report.per_rule {
            if let Some(&i) = set.by_id.get(id) {
                let r = &set.rules[i];
                for f in fails {
                    errs.push(RuleError::new(&r.file, r.line, Some(id.clone()), f.clone()));
                }
            }
        }
        if set.rules.is_empty() {
            errs.push(RuleError::new(Path::new("<rules>"), 0, None, "no rules loaded"));
        }
        if errs.is_empty() { Ok(set) } else { Err(RuleErrors(errs)) }
    }

    fn compile(located: Vec<Located>, errs: &mut Vec<RuleError>) -> Option<RuleSet> {
        let mut rules: Vec<Rule> = Vec::new();
        let mut by_id: HashMap<String, usize> = HashMap::new();
        let mut builtins = Builtins::default();
        let mut kw_entries: Vec<(u32, Vec<String>, Exclusions)> = Vec::new();
        let mut kw_ci = false;
        let mut re_entries: Vec<(u32, String, Option<Validator>, bool)> = Vec::new();
        let mut first_seen: HashMap<String, (PathBuf, usize)> = HashMap::new();
        let mut field_rules = fields::Fields::default();
        let mut field_role = Vec::new();
        for Located { rule: r, file, line } in located {
            let mut err = |msg: String| errs.push(RuleError::new(&file, line, Some(r.id.clone()), msg));
            if let Some((f0, l0)) = first_seen.get(&r.id) {
                err(format!("duplicate rule id (first defined at {}:{l0})", f0.display()));
                continue;
            }
            first_seen.insert(r.id.clone(), (file.clone(), line));
            let problems = check_rule(&r);
            if !problems.is_empty() {
                for p in problems {
                    errs.push(RuleError::new(&file, line, Some(r.id.clone()), p));
                }
                continue;
            }
            if !r.enabled {
                continue;
            }
            let idx = rules.len() as u32;
            let d = &r.detector;
            let detector = if let Some(b) = &d.builtin {
                let Some(b) = Builtin::from_name(b) else { continue };
                // names and addresses are found by field: a team's own rule for its own keys
                // (`fields: [dwfzr]`) stands beside the shipped one, each with its fields
                let by_field = matches!(b, Builtin::CnName | Builtin::CnAddress);
                if by_field && builtins.rule(b).is_some() {
                    // (the first rule keeps the detector; this one is a field slot of its own)
                } else if let Some(prev) = builtins.set(b, idx) {
                    errs.push(RuleError::new(
                        &file,
                        line,
                        Some(r.id.clone()),
                        format!("builtin detector {} is already used by rule {}", b.name(), rules[prev as usize].id),
                    ));
                    continue;
                }
                format!("builtin:{}", b.name())
            } else if let Some(kws) = &d.keywords {
                kw_ci |= d.case_insensitive;
                kw_entries.push((
                    idx,
                    kws.clone(),
                    Exclusions {
                        not_followed_by: d.not_followed_by.clone(),
                        not_preceded_by: d.not_preceded_by.clone(),
                    },
                ));
                "keywords".to_string()
            } else if let Some(re) = &d.regex {
                let v = d.validator.as_deref().and_then(Validator::from_name);
                re_entries.push((idx, re.clone(), v, d.case_insensitive));
                "regex".to_string()
            } else {
                continue;
            };
            let kind = match d.builtin.as_deref().and_then(Builtin::from_name) {
                Some(Builtin::CnName) => Some(fields::Kind::Name),
                Some(Builtin::CnAddress) => Some(fields::Kind::Address),
                _ if !r.fields.is_empty() => Some(fields::Kind::Other),
                _ => None,
            };
            field_role.push(match kind {
                None => FieldRole::None,
                Some(fields::Kind::Other) => FieldRole::Raised,
                Some(_) => FieldRole::Found,
            });
            if let Some(kind) = kind {
                let labels = if kind == fields::Kind::Other { &[][..] } else { &r.context[..] };
                if let Err(e) = field_rules.add(idx, kind, &r.fields, labels) {
                    errs.push(RuleError::new(&file, line, Some(r.id.clone()), e));
                    continue;
                }
            }
            let label = r.label.clone().unwrap_or_else(|| default_label(&r.id));
            by_id.insert(r.id.clone(), rules.len());
            rules.push(Rule {
                id: r.id,
                name: r.name,
                description: r.description,
                category: r.category,
                level: r.level,
                action: r.action,
                mask: r.mask.unwrap_or_default(),
                label,
                context_ac: if r.context.is_empty() {
                    None
                } else {
                    aho_corasick::AhoCorasick::builder()
                        .kind(Some(aho_corasick::AhoCorasickKind::DFA))
                        .build(&r.context)
                        .ok()
                },
                context: r.context,
                context_required: r.context_required,
                fields: r.fields,
                examples: r.examples.unwrap_or_default(),
                detector,
                file,
                line,
            });
        }
        if !errs.is_empty() {
            return None;
        }
        let keywords = match KeywordMatcher::build(&kw_entries, kw_ci) {
            Ok(k) => k,
            Err(e) => {
                errs.push(RuleError::new(Path::new("<rules>"), 0, None, e));
                return None;
            }
        };
        let patterns = match PatternMatcher::build(&re_entries) {
            Ok(p) => p,
            Err(e) => {
                errs.push(RuleError::new(Path::new("<rules>"), 0, None, e));
                return None;
            }
        };
        let shared = patterns.as_ref().and_then(|p| {
            let kws: Vec<(u32, &str)> = kw_entries.iter().flat_map(|e| e.1.iter().map(|k| (e.0, k.as_str()))).collect();
            literals::SharedPass::build(&kws, p.sources(), kw_ci)
        });
        Some(RuleSet { rules, by_id, builtins, keywords, patterns, shared, fields: field_rules, field_role })
    }

    /// The compiled rules, in load order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Index of a rule by id.
    pub fn rule_index(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    /// Whether `key` names a field of some rule (`姓名`, `address`): a value under it is read as
    /// that field's (ASCII case folded, as field names are matched everywhere).
    pub fn names_field(&self, key: &[u8]) -> bool {
        self.fields.names_field(key)
    }

    /// Scan `input` (any bytes; invalid UTF-8 is fine) and return its findings in order.
    pub fn scan(&self, input: &[u8]) -> Scan {
        let mut s = Scan::default();
        self.scan_into(input, &mut s);
        s
    }

    /// Like [`scan`](Self::scan), reusing `out`'s buffers.
    pub fn scan_into(&self, input: &[u8], out: &mut Scan) {
        self.scan_at(input, &Place::start(), out);
    }

    /// Scan a text that stands at `place`: the value of a known field (a spreadsheet column), or
    /// a stretch of a stream whose CSV header row is no longer in it.
    pub fn scan_at(&self, input: &[u8], place: &Place<'_>, out: &mut Scan) {
        out.findings.clear();
        out.values.clear();
        out.hits.clear();
        out.kept.clear();
        let norm = normalize::normalize(input);
        let t: &[u8] = &norm.text;
        out.marks.want_values = self.fields.wants_values() || self.keywords.is_some();
        self.builtins.scan(t, &mut out.marks, &mut out.hits);
        if !out.marks.values_done {
            // no built-in pass ran to note them on its way (or none was asked for)
            out.marks.values.clear();
            if out.marks.want_values {
                fields::for_each_candidate(t, |p, house| out.marks.values.push(p << 1 | usize::from(house)));
            }
        }
        let values = &out.marks.values[..];
        let orig = |p: usize| norm.orig_start(p);
        let hint = std::cell::Cell::new(0);
        let floor = |p: usize, d: usize| norm.floor_near(p, d, &hint);
        let coords = fields::Coords { raw: input, orig: &orig, floor: &floor };
        let mut lazy = fields::Lazy::default();
        self.fields.scan(t, place, values, &coords, &mut lazy, &mut out.hits, &mut out.kept);
        if let Some(k) = &self.keywords {
            k.scan_spaced(t, values, &mut out.hits);
        }
        match (&self.shared, &self.keywords, &self.patterns) {
            (Some(sp), Some(k), Some(p)) => sp.scan(k, p, t, &mut out.hits),
            (_, k, p) => {
                if let Some(k) = k {
                    k.scan(t, &mut out.hits);
                }
                if let Some(p) = p {
                    p.scan(t, &mut out.hits);
                }
            }
        }
        if out.hits.is_empty() {
            return;
        }
        resolve_overlaps(&mut out.hits, &mut out.merged);
        let mut kept = out.kept.iter().peekable();
        for h in &out.hits {
            let rule = &self.rules[h.rule as usize];
            let in_field = match self.field_role[h.rule as usize] {
                FieldRole::None => false,
                // names and addresses are found by their field or label
                FieldRole::Found => true,
                FieldRole::Raised => {
                    (rule.context_required || out.want_context)
                        && self.fields.in_field(t, h.start, h.rule, place, &coords, &mut lazy)
                }
            };
            let context = in_field
                || ((rule.context_required || out.want_context)
                    && rule.context_ac.as_ref().is_some_and(|ac| has_context(t, h.start, h.end, ac)));
            if rule.context_required && !context {
                continue;
            }
            // the hits that have one come in order too: the one for this hit, if it stood
            while kept.next_if(|k| k.0.start < h.start).is_some() {}
            let k = kept.next_if(|k| k.0 == *h).map_or(Kept::Unknown, |k| k.1);
            let v0 = out.values.len() as u32;
            out.values.extend_from_slice(&t[h.start..h.end]);
            let v1 = out.values.len() as u32;
            out.findings.push(Finding {
                rule: h.rule as usize,
                start: norm.orig_start(h.start),
                end: norm.orig_end(h.end),
                context,
                val: (v0, v1),
                kept: k,
            });
        }
    }

    /// Run every rule's `match`/`no_match` examples against the whole set.
    pub fn test_examples(&self) -> ExampleReport {
        let mut report = ExampleReport::default();
        for (i, r) in self.rules.iter().enumerate() {
            let mut ran = 0;
            let mut fails = Vec::new();
            let ex = &r.examples;
            let whole = [(None, false, &ex.matches, &ex.no_match)];
            let in_field = ex.in_field.iter().map(|f| (Some(f.field.as_str()), false, &f.matches, &f.no_match));
            let in_form = [(None, true, &ex.in_form.matches, &ex.in_form.no_match)];
            for (field, form, matches, no_match) in whole.into_iter().chain(in_field).chain(in_form) {
                let place = Place { field: field.map(str::as_bytes), ..Place::start() };
                let found = |text: &str| {
                    let mut s = Scan::default();
                    let text = if form { stream::form_view(text.as_bytes()) } else { text.as_bytes().into() };
                    self.scan_at(&text, &place, &mut s);
                    s.findings.iter().any(|f| f.rule == i)
                };
                let at = match field {
                    Some(f) => format!(" in field {f:?}"),
                    None if form => " as form data".to_string(),
                    None => String::new(),
                };
                for ex in matches {
                    ran += 1;
                    if !found(ex) {
                        fails.push(format!("example does not match: {ex:?}{at}"));
                    }
                }
                for ex in no_match {
                    ran += 1;
                    if found(ex) {
                        fails.push(format!("no_match example matches: {ex:?}{at}"));
                    }
                }
            }
            report.per_rule.push((r.id.clone(), ran, fails));
        }
        report
    }
}

/// The default rule set shipped in `rules/`, compiled into the binary so `dlpgate` works anywhere.
pub const DEFAULT_RULE_FILES: &[(&str, &str)] = &[
    ("rules/cn/identity.yaml", include_str!("../../../rules/cn/identity.yaml")),
    ("rules/cn/contact.yaml", include_str!("../../../rules/cn/contact.yaml")),
    ("rules/cn/organization.yaml", include_str!("../../../rules/cn/organization.yaml")),
    ("rules/cn/personal.yaml", include_str!("../../../rules/cn/personal.yaml")),
    ("rules/fin/bank_card.yaml", include_str!("../../../rules/fin/bank_card.yaml")),
    ("rules/net/network.yaml", include_str!("../../../rules/net/network.yaml")),
    ("rules/secret/markings.yaml", include_str!("../../../rules/secret/markings.yaml")),
    ("rules/secret/credentials.yaml", include_str!("../../../rules/secret/credentials.yaml")),
];

/// Compile the built-in default rule set.
pub fn default_rules() -> Result<RuleSet, RuleErrors> {
    let sources: Vec<(PathBuf, String)> =
        DEFAULT_RULE_FILES.iter().map(|(p, t)| (PathBuf::from(p), (*t).to_string())).collect();
    RuleSet::from_sources(&sources)
}

/// Problems with one raw rule that do not need the others.
fn check_rule(r: &RawRule) -> Vec<String> {
    let mut p = Vec::new();
    let id_ok = !r.id.is_empty()
        && r.id.contains('.')
        && r.id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'));
    if !id_ok {
        p.push(format!("id {:?} must be dotted lowercase, e.g. cn.id_card", r.id));
    }
    if r.name.zh.is_none() && r.name.en.is_none() {
        p.push("name needs zh or en".into());
    }
    if r.category.trim().is_empty() {
        p.push("category is empty".into());
    }
    let d = &r.detector;
    let kinds = usize::from(d.builtin.is_some()) + usize::from(d.keywords.is_some()) + usize::from(d.regex.is_some());
    if kinds != 1 {
        p.push("detector needs exactly one of builtin, keywords, regex".into());
    }
    if let Some(b) = &d.builtin {
        if Builtin::from_name(b).is_none() {
            let names: Vec<&str> = Builtin::ALL.iter().map(|b| b.name()).collect();
            p.push(format!("unknown builtin detector {b:?} (known: {})", names.join(", ")));
        }
    }
    if let Some(k) = &d.keywords {
        if k.is_empty() || k.iter().any(|s| s.is_empty()) {
            p.push("keywords must be a non-empty list of non-empty strings".into());
        }
    } else if !d.not_followed_by.is_empty() || !d.not_preceded_by.is_empty() {
        p.push("not_followed_by/not_preceded_by apply to keywords detectors only".into());
    }
    if let Some(re) = &d.regex {
        if let Err(e) = patterns::check_one(re, d.case_insensitive) {
            p.push(e);
        }
    }
    if let Some(v) = &d.validator {
        if d.regex.is_none() {
            p.push("validator applies to regex detectors only".into());
        } else if Validator::from_name(v).is_none() {
            p.push(format!("unknown validator {v:?} (known: {})", Validator::NAMES));
        }
    }
    for f in &r.fields {
        let core = f.trim().trim_start_matches('*').trim_end_matches('*');
        if core.is_empty() || core.contains('*') {
            p.push(format!("field {f:?}: a field name, with `*` only at its start or end"));
        }
    }
    let value_detector =
        matches!(d.builtin.as_deref().and_then(Builtin::from_name), Some(Builtin::CnName | Builtin::CnAddress));
    if value_detector && r.fields.is_empty() && r.context.is_empty() {
        p.push("a name or address detector needs fields or context labels to look after".into());
    }
    match &r.examples {
        Some(e)
            if !e.matches.is_empty()
                || e.in_field.iter().any(|f| !f.matches.is_empty())
                || !e.in_form.matches.is_empty() => {}
        _ => p.push("rule has no examples: add examples.match (and examples.no_match)".into()),
    }
    if let Some(m) = &r.mask {
        if m.keep_head > 64 || m.keep_tail > 64 {
            p.push("mask keep_head/keep_tail must be at most 64".into());
        }
    }
    p
}

fn default_label(id: &str) -> String {
    let last = id.rsplit('.').next().unwrap_or(id);
    format!("[{}]", last.to_ascii_uppercase())
}

/// Whether `a` goes before `b`: by start, the longer first, the earlier rule first.
#[inline]
fn before(a: &Hit, b: &Hit) -> bool {
    (a.start, b.end, a.rule) < (b.start, a.end, b.rule)
}

/// Put `hits` in order (see [`before`]). They come as a few runs already in order, one per pass
/// (the digit detectors, e-mail, names and addresses, keywords and patterns): those are merged
/// pairwise through `scratch`, in linear time for each merge; many runs are sorted.
fn sort_hits(hits: &mut Vec<Hit>, scratch: &mut Vec<Hit>) {
    const MAX_RUNS: usize = 8;
    let mut ends = [0usize; MAX_RUNS];
    let mut runs = 0;
    for i in 1..hits.len() {
        if before(&hits[i], &hits[i - 1]) {
            if runs == MAX_RUNS - 1 {
                hits.sort_by(|a, b| (a.start, b.end, a.rule).cmp(&(b.start, a.end, b.rule)));
                return;
            }
            ends[runs] = i;
            runs += 1;
        }
    }
    if runs == 0 {
        return;
    }
    ends[runs] = hits.len();
    runs += 1;
    // merge runs pairwise until one is left: [0, e0) with [e0, e1), [e1, e2) with [e2, e3), …
    scratch.clear();
    scratch.resize(hits.len(), Hit { rule: 0, start: 0, end: 0 });
    while runs > 1 {
        let mut from = 0;
        let mut kept = 0;
        let mut r = 0;
        while r < runs {
            if r + 1 == runs {
                scratch[from..ends[r]].copy_from_slice(&hits[from..ends[r]]);
            } else {
                merge(&hits[from..ends[r]], &hits[ends[r]..ends[r + 1]], &mut scratch[from..ends[r + 1]]);
            }
            from = ends[(r + 1).min(runs - 1)];
            ends[kept] = from;
            kept += 1;
            r += 2;
        }
        runs = kept;
        std::mem::swap(hits, scratch);
    }
}

/// Merge `a` and `b` (each in order) into `out` (as long as both); `a` first on a tie.
fn merge(a: &[Hit], b: &[Hit], out: &mut [Hit]) {
    let (mut i, mut j) = (0, 0);
    for o in out.iter_mut() {
        // take from `b` while it goes first; from `a` otherwise, or once `b` is used up
        let from_b = j < b.len() && (i == a.len() || before(&b[j], &a[i]));
        if from_b {
            *o = b[j];
            j += 1;
        } else {
            *o = a[i];
            i += 1;
        }
    }
}

/// Sort by start, and where hits overlap keep the longest (the earlier rule on a tie).
fn resolve_overlaps(hits: &mut Vec<Hit>, scratch: &mut Vec<Hit>) {
    sort_hits(hits, scratch);
    // keep the longest of each overlapping group, in place
    let mut kept = 0;
    for i in 0..hits.len() {
        let h = hits[i];
        if kept > 0 && h.start < hits[kept - 1].end {
            let last = &mut hits[kept - 1];
            if h.end - h.start > last.end - last.start {
                *last = h;
            }
        } else {
            hits[kept] = h;
            kept += 1;
        }
    }
    hits.truncate(kept);
}

fn has_context(t: &[u8], start: usize, end: usize, words: &aho_corasick::AhoCorasick) -> bool {
    let lo = start.saturating_sub(CONTEXT_BEFORE);
    let hi = (end + CONTEXT_AFTER).min(t.len());
    words.is_match(&t[lo..hi])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_set_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<RuleSet>();
        assert_send_sync::<Scan>();
    }

    /// A rule set of keywords alone (no built-in pass to note the joins on its way) finds spaced
    /// markings too; a rule's examples are checked as it loads.
    #[test]
    fn spaced_keywords_without_the_builtin_pass() {
        let text = "rules:\n  - id: t.mark\n    name: {en: Mark}\n    category: t\n    level: core\n    detector: {keywords: [绝密, 内部资料]}\n    action: block\n    examples: {match: [绝密, \"绝 密★\", \"内　部 资料\"], no_match: [\"绝 对 机 密\"]}\n";
        let set = RuleSet::from_sources(&[(PathBuf::from("t.yaml"), text.to_string())]);
        assert!(set.is_ok(), "{:?}", set.err());
    }

    /// What the name and address detectors keep for their masks is what the masks work out for
    /// themselves, and the findings that have it carry it.
    #[test]
    fn kept_for_masking_is_what_the_mask_works_out() {
        let set = default_rules().unwrap();
        let text = r#"{"xm":"欧阳娜娜","zz":"河南省郑州市金水区文化路85号3号楼","lxr":"阿依古丽·买买提","jtzz":"文化路85号院","name":"张伟"}"#;
        let scan = set.scan(text.as_bytes());
        let mut known = 0;
        for f in &scan.findings {
            let style = &set.rules()[f.rule].mask;
            let (mut kept, mut again) = (Vec::new(), Vec::new());
            transform::mask_kept(scan.value(f), style, f.kept(), &mut kept);
            transform::mask(scan.value(f), style, &mut again);
            assert_eq!(String::from_utf8_lossy(&kept), String::from_utf8_lossy(&again));
            known += usize::from(f.kept() != Kept::Unknown);
        }
        assert_eq!(known, 4, "{:?}", scan.findings);
    }

    #[test]
    fn overlaps_keep_the_longest() {
        let mut hits = vec![
            Hit { rule: 1, start: 0, end: 11 },
            Hit { rule: 2, start: 0, end: 18 },
            Hit { rule: 3, start: 20, end: 25 },
        ];
        resolve_overlaps(&mut hits, &mut Vec::new());
        assert_eq!(hits, vec![Hit { rule: 2, start: 0, end: 18 }, Hit { rule: 3, start: 20, end: 25 }]);
    }

    proptest::proptest! {
        /// Runs in order are merged into what a full sort gives, whatever their number and lengths
        /// (past eight runs the hits are sorted whole).
        #[test]
        fn hits_are_put_in_order(runs in proptest::collection::vec(
            proptest::collection::vec((0usize..40, 0usize..6, 0u32..3), 0..12), 0..12)
        ) {
            let mut hits = Vec::new();
            for run in &runs {
                let mut r: Vec<Hit> = run.iter().map(|&(start, len, rule)| Hit { rule, start, end: start + len }).collect();
                r.sort_by(|a, b| (a.start, b.end, a.rule).cmp(&(b.start, a.end, b.rule)));
                hits.extend(r);
            }
            let mut want = hits.clone();
            want.sort_by(|a, b| (a.start, b.end, a.rule).cmp(&(b.start, a.end, b.rule)));
            sort_hits(&mut hits, &mut Vec::new());
            proptest::prop_assert_eq!(hits, want);
        }
    }
}
