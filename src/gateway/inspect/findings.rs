//! The finding log of one request: counts for metrics, masked samples, keyed fingerprints and
//! document locations for the audit event (never a value).

use crate::config::Snapshot;
use crate::documents;
use crate::engine::Action;
use crate::engine::RuleId;
use crate::engine::transform::mask;
use crate::policy::DeptId;
use crate::policy::Direction;
use crate::telemetry::{AuditFinding, Metrics};

/// Findings of one request, aggregated per (direction, rule, action).
#[derive(Debug, Default)]
pub struct FindingLog {
    pub entries: Vec<LogEntry>,
    /// Counts only, no sample or fingerprint: nothing will read them (no audit sink).
    pub brief: bool,
    /// Per rule, the values a response delivered in clear (`allow`, `alert`), for the quotas.
    pub returned: Vec<Returned>,
    /// A body was a document of this kind (the last one inspected).
    pub document: Option<documents::Kind>,
    /// The file name a `Content-Disposition` (of the message or of a multipart part holding a
    /// document) gave it; raw here, masked when audited.
    pub file: Option<String>,
}

/// Values of one rule a response delivered in clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Returned {
    pub rule: RuleId,
    pub count: u64,
}

#[derive(Debug)]
pub struct LogEntry {
    pub dir: Direction,
    pub rule: RuleId,
    pub action: Action,
    pub count: u64,
    pub sample: String,
    pub fingerprints: Vec<String>,
    /// Where in a document (at most [`MAX_FINGERPRINTS`]).
    pub locations: Vec<String>,
}

const MAX_FINGERPRINTS: usize = 16;

impl FindingLog {
    /// Record one finding: count it, and (unless `brief`) keep a masked sample and a keyed
    /// fingerprint for the audit event (never the value). `allow` findings are only counted (the
    /// SOC's number of values a department received in clear); they are not audited.
    pub fn record(&mut self, snap: &Snapshot, dir: Direction, rule: RuleId, action: Action, value: &[u8]) {
        self.record_at(snap, dir, rule, action, value, None);
    }

    /// [`FindingLog::record`], with where in a document the value was (named only while the
    /// entry keeps locations: a workbook may hold a million values).
    pub fn record_at(
        &mut self,
        snap: &Snapshot,
        dir: Direction,
        rule: RuleId,
        action: Action,
        value: &[u8],
        location: Option<&dyn Fn() -> String>,
    ) {
        if dir == Direction::Response && matches!(action, Action::Allow | Action::Alert) {
            match self.returned.iter_mut().find(|r| r.rule == rule) {
                Some(r) => r.count += 1,
                None => self.returned.push(Returned { rule, count: 1 }),
            }
        }
        if let Some(e) = self.entries.iter_mut().find(|e| e.dir == dir && e.rule == rule && e.action == action) {
            e.count += 1;
            if action == Action::Allow {
                return;
            }
            if let Some(l) = location.filter(|_| !self.brief && e.locations.len() < MAX_FINGERPRINTS).map(|f| f()) {
                if !e.locations.contains(&l) {
                    e.locations.push(l);
                }
            }
            if !self.brief && e.fingerprints.len() < MAX_FINGERPRINTS {
                let fp = snap.fingerprint_key.fingerprint(value);
                if !e.fingerprints.contains(&fp) {
                    e.fingerprints.push(fp);
                }
            }
            return;
        }
        let (sample, fingerprints) = if self.brief || action == Action::Allow {
            (String::new(), Vec::new())
        } else {
            let mut s = Vec::new();
            mask(value, &snap.rules.rules()[rule].mask, &mut s);
            (String::from_utf8_lossy(&s).into_owned(), vec![snap.fingerprint_key.fingerprint(value)])
        };
        let locations = location.filter(|_| !self.brief && action != Action::Allow).map(|f| f()).into_iter().collect();
        self.entries.push(LogEntry { dir, rule, action, count: 1, sample, fingerprints, locations });
    }

    /// Count every recorded finding in `dlpgate_findings_total` (once per request), through the
    /// series the configuration resolved.
    pub fn count(&self, active: &crate::gateway::state::Active, dept: DeptId) {
        let snap: &Snapshot = active;
        for e in &self.entries {
            match active.series.findings(snap, e.rule.0, e.dir, e.action, dept.0) {
                Some(c) => c.inc_by(e.count),
                None => {
                    let r = &snap.rules.rules()[e.rule];
                    let d = snap.departments.get(dept.0).map(|d| d.id.as_str()).unwrap_or("unknown");
                    Metrics::get()
                        .findings
                        .with_label_values(&[&r.id, r.level.as_str(), e.dir.as_str(), d, e.action.as_str()])
                        .inc_by(e.count);
                }
            }
        }
    }

    /// The strongest action recorded (allow when nothing was).
    pub fn strongest(&self) -> Action {
        self.entries.iter().map(|e| e.action).max().unwrap_or(Action::Allow)
    }

    /// Ids of rules whose findings were blocked.
    pub fn blocked_rules(&self, snap: &Snapshot) -> Vec<String> {
        let mut v: Vec<String> = self
            .entries
            .iter()
            .filter(|e| e.action == Action::Block)
            .map(|e| snap.rules.rules()[e.rule].id.clone())
            .collect();
        v.dedup();
        v
    }

    pub fn audit_findings(&self, snap: &Snapshot) -> Vec<AuditFinding> {
        self.entries
            .iter()
            .filter(|e| e.action != Action::Allow)
            .map(|e| {
                let r = &snap.rules.rules()[e.rule];
                AuditFinding {
                    rule: r.id.clone(),
                    category: r.category.clone(),
                    level: r.level.as_str().into(),
                    action: e.action.as_str().into(),
                    count: e.count,
                    sample: e.sample.clone(),
                    fingerprints: e.fingerprints.clone(),
                    locations: e.locations.clone(),
                }
            })
            .collect()
    }
}
