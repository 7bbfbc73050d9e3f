//! Command line: `run`, `demo`, `check`, `rules test`, `scan`, `mask`.
//!
//! Each subcommand is a thin wrapper around library calls; errors bubble up as `anyhow` and `main`
//! prints them on one line with a non-zero exit.

use std::io::{self, BufRead, BufWriter, Read, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::charset::{Charset, Declared, TextCodec};
use crate::engine::stream::StreamFinding;
use crate::engine::{Action, HashKey, RuleSet, StreamScanner, Transformer};

#[derive(Debug, Parser)]
#[command(name = "dlpgate", version, about = "Data-security (DLP) defense gateway", propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (the default when no subcommand is given)
    Run {
        /// Configuration file
        #[arg(short, long, default_value = "dlpgate.yaml")]
        config: PathBuf,
        /// Take over the listening sockets of a running instance (graceful binary upgrade)
        #[arg(short, long)]
        upgrade: bool,
    },
    /// Gateway plus a built-in demo backend on loopback, with a bundled configuration
    Demo {
        /// Directory for the generated config, development certificates and audit log
        #[arg(long, default_value = ".dlpgate-demo")]
        dir: PathBuf,
        #[arg(long, default_value_t = 8080)]
        http: u16,
        #[arg(long, default_value_t = 8443)]
        https: u16,
        #[arg(long, default_value_t = 9090)]
        admin: u16,
        #[arg(long, default_value_t = 18080)]
        backend: u16,
    },
    /// Validate a configuration and its rules; exit 1 with file:line errors
    Check {
        #[arg(short, long, default_value = "dlpgate.yaml")]
        config: PathBuf,
        /// Also print the effective policy per department
        #[arg(long)]
        print: bool,
        /// Also connect to what the config names over the network (cluster.redis)
        #[arg(long)]
        connect: bool,
    },
    /// Scan a file (or `-` for stdin) and report findings
    Scan(ScanArgs),
    /// Print a file (or stdin) with every finding transformed by its rule's action
    Mask(MaskArgs),
    /// Rule-file tools
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Run every rule's match/no_match examples
    Test {
        /// Rule directories or files (default: ./rules if present, else the built-in set)
        dirs: Vec<PathBuf>,
    },
}

#[derive(Debug, Clone, Args)]
pub struct RuleArgs {
    /// Rule directory or file; repeatable (default: ./rules if present, else the built-in set)
    #[arg(long = "rules", value_name = "DIR")]
    pub rules: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Text,
    Jsonl,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    #[command(flatten)]
    pub rules: RuleArgs,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Input file, or `-` for stdin
    pub input: PathBuf,
}

#[derive(Debug, Args)]
pub struct MaskArgs {
    #[command(flatten)]
    pub rules: RuleArgs,
    /// Key file for the `hash` action (default: a random key per run)
    #[arg(long, value_name = "FILE")]
    pub hash_key: Option<PathBuf>,
    /// HMAC of `hash` tokens, as `rules.hash_algorithm` in the config
    #[arg(long, value_name = "ALG", default_value = "hmac-sha256", value_parser = ["hmac-sha256", "hmac-sm3"])]
    pub hash_algorithm: String,
    /// Mask as the gateway would for this department's responses: its clearance and the route's
    /// policy, with the rules and hash key of the configuration (`-c`)
    #[arg(long, value_name = "ID", conflicts_with_all = ["rules", "hash_key"])]
    pub department: Option<String>,
    /// Route whose policy applies with `--department` (default: the first route)
    #[arg(long, value_name = "ID", requires = "department")]
    pub route: Option<String>,
    /// Gateway configuration for `--department`
    #[arg(short = 'c', long, value_name = "FILE", default_value = "dlpgate.yaml", requires = "department")]
    pub config: PathBuf,
    /// Write here instead of stdout (a masked workbook or archive is a file of its own)
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Input file, or `-` for stdin
    pub input: PathBuf,
}

/// Run the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Some(Command::Run { config, upgrade }) => {
            crate::gateway::server::run_server(&config, crate::gateway::server::RunOptions { upgrade })
        }
        None => crate::gateway::server::run_server(std::path::Path::new("dlpgate.yaml"), Default::default()),
        Some(Command::Demo { dir, http, https, admin, backend }) => {
            demo(crate::gateway::demo::DemoOptions { dir, http, https, admin, backend })
        }
        Some(Command::Check { config, print, connect }) => check(&config, print, connect),
        Some(Command::Scan(a)) => scan(a),
        Some(Command::Mask(a)) => mask(a),
        Some(Command::Rules { command: RulesCommand::Test { dirs } }) => rules_test(&dirs),
    }
}

/// The rule set named on the command line, or `./rules`, or the built-in default set.
pub fn load_rules(dirs: &[PathBuf]) -> Result<RuleSet> {
    if !dirs.is_empty() {
        return RuleSet::load(dirs).map_err(|e| anyhow::anyhow!("{e}"));
    }
    let local = PathBuf::from("rules");
    if local.is_dir() {
        return RuleSet::load(&[local]).map_err(|e| anyhow::anyhow!("{e}"));
    }
    crate::engine::default_rules().map_err(|e| anyhow::anyhow!("{e}"))
}

/// What an input holds, told by its first bytes (the gateway tells a body by its type too).
enum Input {
    /// A document (xlsx, docx, pptx, zip, xls, PDF), whole: inspected inside, not as text.
    Document(Vec<u8>),
    /// Form-urlencoded data (a saved form body or query string), whole: `+` reads as a space.
    Form(Vec<u8>),
    /// A multipart body (a captured upload), whole, with its boundary: read part by part.
    Multipart(Vec<u8>, String),
    /// Anything else, streamed as text (gzip is decompressed; GBK and UTF-16 are read in their
    /// charset, see [`TextCodec`]).
    Text(Box<dyn Read>),
}

/// Most bytes an input is told by: a document's signature, a form's first pairs.
const HEAD: usize = 64 * 1024;

/// Open a file (or stdin, `-`) and tell what it holds by what its first read brings (at least a
/// document signature's worth): a document or form data is read whole; text streams through the
/// scanner as it comes; a gzip stream (`.gz`, or what a log shipper uploads) is read decoded, as
/// the gateway decodes a gzip body.
fn open_input(path: &PathBuf) -> Result<Input> {
    let mut raw: Box<dyn Read> = if path.as_os_str() == "-" {
        Box::new(io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?)
    };
    let mut head = vec![0u8; HEAD];
    let (mut n, mut whole) = (0, false);
    while n < crate::documents::SNIFF_LEN {
        match raw.read(&mut head[n..]) {
            Ok(0) => {
                whole = true;
                break;
            }
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).with_context(|| format!("{}: read error", path.display())),
        }
    }
    head.truncate(n);
    let doc = crate::documents::sniff(&head).is_some();
    let multipart = !doc && multipart_boundary(&head).is_some();
    let form = !doc && !multipart && looks_like_form(&head, whole);
    let mut r = io::BufReader::with_capacity(HEAD, io::Cursor::new(head).chain(raw));
    let read_error = || format!("{}: read error", path.display());
    if !doc && !form && !multipart {
        if r.fill_buf().with_context(read_error)?.starts_with(&[0x1f, 0x8b]) {
            return Ok(Input::Text(Box::new(flate2::bufread::MultiGzDecoder::new(r))));
        }
        return Ok(Input::Text(Box::new(r)));
    }
    let mut all = Vec::new();
    r.read_to_end(&mut all).with_context(|| format!("{}: read error", path.display()))?;
    Ok(match multipart_boundary(&all) {
        _ if doc => Input::Document(all),
        Some(b) if multipart => Input::Multipart(all, b),
        _ if form && looks_like_form(&all, true) => Input::Form(all),
        _ => Input::Text(Box::new(io::Cursor::new(all))),
    })
}

/// The boundary of a multipart body, as a browser or `curl -F` sends one: a first line of `--`
/// and the boundary (1 to 70 characters, RFC 2046), and a `Content-Disposition` in the first
/// part's head.
fn multipart_boundary(data: &[u8]) -> Option<String> {
    let line = memchr::memmem::find(data, b"\r\n")?;
    let b = data[..line].strip_prefix(b"--")?;
    let bchar = |c: &u8| c.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(c);
    if !(1..=70).contains(&b.len()) || !b.iter().all(bchar) || b.ends_with(b" ") {
        return None;
    }
    let head = &data[line..line + memchr::memmem::find(&data[line..], b"\r\n\r\n")? + 2];
    let disposition = head.windows(22).any(|w| w.eq_ignore_ascii_case(b"\r\ncontent-disposition:"));
    disposition.then(|| String::from_utf8_lossy(b).into_owned())
}

/// What reads a document found in a multipart part (its bytes, its file name): its rewrite.
type ReadDocument<'a> = &'a mut dyn FnMut(&[u8], &str) -> Result<Option<Vec<u8>>>;

/// `scan` and `mask` as the gateway's reader of multipart parts: text parts through the engine
/// (offsets counted from the start of the body), documents through `document`, which returns
/// their rewrite; its first error is kept for the caller.
struct Offline<'a> {
    rules: &'a RuleSet,
    tr: &'a Transformer,
    decide: &'a mut dyn FnMut(&StreamFinding, &[u8]) -> Action,
    document: ReadDocument<'a>,
    /// evaluate context words for every finding (`scan` reports them)
    context: bool,
    failed: Option<anyhow::Error>,
}

impl crate::gateway::inspect::multipart::Parts for Offline<'_> {
    fn text(
        &mut self,
        at: usize,
        text: &[u8],
        place: &crate::engine::Place<'_>,
        form: bool,
        out: &mut Vec<u8>,
    ) -> bool {
        let decide = &mut *self.decide;
        let mut moved = |f: &StreamFinding, v: &[u8]| {
            decide(&StreamFinding { start: f.start + at as u64, end: f.end + at as u64, ..*f }, v)
        };
        if form {
            crate::engine::stream::scan_form_at(self.rules, self.tr, text, place, self.context, out, &mut moved);
        } else {
            crate::engine::stream::scan_whole_at(self.rules, self.tr, text, text, place, self.context, out, &mut moved);
        }
        false
    }

    fn document(
        &mut self,
        at: usize,
        doc: &[u8],
        file: Option<String>,
        out: &mut Vec<u8>,
    ) -> Result<bool, crate::gateway::inspect::Uninspectable> {
        let name = file.unwrap_or_else(|| format!("the file at byte {at}"));
        match (self.document)(doc, &name) {
            Ok(bytes) => out.extend_from_slice(bytes.as_deref().unwrap_or(doc)),
            Err(e) => {
                self.failed.get_or_insert(e);
                out.extend_from_slice(doc);
            }
        }
        Ok(false)
    }
}

/// Read a multipart body part by part (see [`Offline`]): its rewrite.
fn multipart(
    rules: &RuleSet,
    tr: &Transformer,
    body: &[u8],
    boundary: &str,
    context: bool,
    decide: &mut dyn FnMut(&StreamFinding, &[u8]) -> Action,
    document: ReadDocument<'_>,
) -> Result<Vec<u8>> {
    let mut parts = Offline { rules, tr, decide, document, context, failed: None };
    let scanned = crate::gateway::inspect::multipart::scan_parts(&mut parts, body, boundary)
        .map_err(|e| anyhow::anyhow!("{}", e.message()))?;
    match parts.failed {
        Some(e) => Err(e),
        None => Ok(scanned.out),
    }
}

/// `mask` (for itself or as a department): the input's rewrite under `act` (rule index → action),
/// whatever it holds; a document, on its own or uploaded in a multipart body, that cannot be
/// masked in place is an error.
fn mask_input(
    rules: &RuleSet,
    tr: &Transformer,
    path: &PathBuf,
    act: &dyn Fn(usize) -> Action,
    w: &mut dyn Write,
) -> Result<()> {
    let mut decide = |f: &StreamFinding, _: &[u8]| act(f.rule);
    let document = |doc: &[u8], name: &std::path::Path| {
        let out = inspect_document(rules, tr, doc, name, &mut |r| act(r), &mut |_, _| {})?;
        let mut bytes = Vec::new();
        write_document(out, doc, &mut bytes).with_context(|| name.display().to_string())?;
        Ok::<_, anyhow::Error>(bytes)
    };
    match open_input(path)? {
        Input::Document(doc) => w.write_all(&document(&doc, path)?)?,
        Input::Multipart(body, boundary) => {
            let mut in_part = |doc: &[u8], name: &str| document(doc, std::path::Path::new(name)).map(Some);
            w.write_all(&multipart(rules, tr, &body, &boundary, false, &mut decide, &mut in_part)?)?;
        }
        input => {
            stream(rules, tr, input, path, false, w, &mut decide)?;
        }
    }
    w.flush()?;
    Ok(())
}

/// Whether `data` reads as form-urlencoded data, as a browser or `curl -d` sends it: `key=value`
/// pairs joined by `&` (a leading `?` allowed), no whitespace but a final line end, keys of the
/// characters a form carries (so JSON, CSV and prose are not taken for one). `whole`: `data` is
/// all of the input, not its first bytes (whose last pair may be cut short, past its key if it is
/// the first, and whose line end may not be the last).
fn looks_like_form(data: &[u8], whole: bool) -> bool {
    let data = data.strip_prefix(b"?").unwrap_or(data);
    let data = data.strip_suffix(b"\n").unwrap_or(data);
    let data = data.strip_suffix(b"\r").unwrap_or(data);
    if !data.contains(&b'=') || data.iter().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
        return false;
    }
    let key_byte = |b: &u8| b.is_ascii_alphanumeric() || !b.is_ascii() || b"%._-*+~[]:".contains(b);
    let mut pairs: Vec<&[u8]> = data.split(|&b| b == b'&').filter(|p| !p.is_empty()).collect();
    if !whole && pairs.len() > 1 {
        pairs.pop();
    }
    !pairs.is_empty()
        && pairs.iter().all(|p| match p.iter().position(|&b| b == b'=') {
            Some(k) => k > 0 && p[..k].iter().all(key_byte),
            None => p.iter().all(key_byte),
        })
}

/// A finding in a document, for `scan`: where it is, and offsets in that part's text.
struct DocFinding<'a> {
    location: String,
    start: usize,
    end: usize,
    value: &'a [u8],
}

/// Inspect a document with `decide` (rule index → action) as the gateway does; `seen` gets every
/// finding. Returns the rewritten document (`None`: unchanged).
fn inspect_document(
    rules: &RuleSet,
    tr: &Transformer,
    doc: &[u8],
    path: &std::path::Path,
    decide: &mut dyn FnMut(usize) -> Action,
    seen: &mut dyn FnMut(usize, DocFinding<'_>),
) -> Result<crate::documents::Outcome> {
    let mut inspect = |part: &crate::documents::Part<'_>| {
        crate::documents::edits(rules, tr, part, &mut |f, value| {
            seen(f.rule, DocFinding { location: (part.locate)(f.start), start: f.start, end: f.end, value });
            decide(f.rule)
        })
    };
    crate::documents::rewrite(doc, &crate::documents::Limits::default(), &|h| rules.names_field(h), &mut inspect)
        .with_context(|| format!("{}", path.display()))
}

/// Write a document's masked form, or say why there is none.
fn write_document(out: crate::documents::Outcome, doc: &[u8], to: &mut dyn Write) -> Result<()> {
    if out.unmaskable {
        bail!(
            "this {} holds values that cannot be masked in place; the gateway refuses it where a finding's action would rewrite it",
            out.kind.as_str()
        );
    }
    to.write_all(out.bytes.as_deref().unwrap_or(doc))?;
    Ok(())
}

/// Where `mask` writes: the output file, or stdout.
fn output(path: Option<&PathBuf>) -> Result<Box<dyn Write>> {
    Ok(match path {
        Some(p) => Box::new(BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("{}: cannot create", p.display()))?,
        )),
        None => Box::new(BufWriter::new(io::stdout().lock())),
    })
}

/// Scan an input that is not a document: form data whole, as the gateway scans a form body; text
/// streamed through the scanner in 64 KiB reads. `context`: evaluate context words for every
/// finding (`scan` reports them; `mask`, like the gateway, needs them only for rules that require
/// them, and leaves the rest out: about an eighth of its work on dense data).
fn stream(
    rules: &RuleSet,
    tr: &Transformer,
    input: Input,
    name: &std::path::Path,
    context: bool,
    out: &mut dyn Write,
    decide: &mut dyn FnMut(&StreamFinding, &[u8]) -> Action,
) -> Result<Option<Charset>> {
    let mut r = match input {
        Input::Form(data) => {
            let mut o = Vec::with_capacity(data.len());
            crate::engine::stream::scan_form_at(
                rules,
                tr,
                &data,
                &crate::engine::Place::start(),
                context,
                &mut o,
                decide,
            );
            out.write_all(&o)?;
            return Ok(None);
        }
        Input::Text(r) => r,
        // (callers read these as such; as text, they are what the gateway scans without a type)
        Input::Document(bytes) | Input::Multipart(bytes, _) => Box::new(io::Cursor::new(bytes)),
    };
    let mut sc = if context { StreamScanner::new().with_context() } else { StreamScanner::new() };
    let mut buf = vec![0u8; 64 * 1024];
    let mut o = Vec::with_capacity(buf.len());
    // text in GBK, UTF-16: decoded for the engine, its output encoded back (as the gateway does)
    let mut codec = TextCodec::new(Declared::Unknown);
    let (mut text, mut coded) = (Vec::new(), Vec::new());
    let mut last = false;
    while !last {
        let n = match r.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).with_context(|| format!("{}: read error", name.display())),
        };
        last = n == 0;
        text.clear();
        let decoded = codec.decode(&buf[..n], last, &mut text).map_err(|_| {
            let charset = codec.charset().map_or("its charset's", |c| c.name());
            anyhow::anyhow!("{}: not {charset} text past its start", name.display())
        })?;
        sc.push(rules, tr, if decoded { &text } else { &buf[..n] }, &mut o, decide);
        if last {
            sc.finish(rules, tr, &mut o, decide);
        }
        if codec.coded() {
            coded.clear();
            codec.encode(&o, last, &mut coded);
            out.write_all(&coded)?;
        } else {
            out.write_all(&o)?;
        }
        o.clear();
    }
    Ok(codec.charset())
}

fn scan(a: ScanArgs) -> Result<()> {
    let rules = load_rules(&a.rules.rules)?;
    let tr = Transformer::new(crate::config::random_key().map_err(anyhow::Error::msg)?);
    let stdout = io::stdout();
    let mut w = BufWriter::new(stdout.lock());
    // the report's lines and count, written to by the text and the document findings alike
    let report = std::cell::RefCell::new((Vec::<u8>::new(), 0usize));
    let add = |line: String| {
        let mut r = report.borrow_mut();
        r.0.extend_from_slice(line.as_bytes());
        r.0.push(b'\n');
        r.1 += 1;
    };
    let sample = |rule: &crate::engine::Rule, value: &[u8]| {
        let mut s = Vec::new();
        crate::engine::transform::mask(value, &rule.mask, &mut s);
        String::from_utf8_lossy(&s).into_owned()
    };
    let mut decide_rule = |rule: usize| rules.rules()[rule].action;
    let mut seen = |rule: usize, f: DocFinding<'_>| {
        let r = &rules.rules()[rule];
        let sample = sample(r, f.value);
        add(match a.format {
            Format::Jsonl => serde_json::json!({
                "rule": r.id, "category": r.category, "level": r.level.as_str(),
                "location": f.location, "start": f.start, "end": f.end,
                "action": r.action.as_str(), "sample": sample,
            })
            .to_string(),
            Format::Text => format!("{}\t{}\t{}\t{}\t{}\t{}", f.location, r.id, r.level, r.category, r.action, sample),
        });
    };
    let mut decide = |f: &StreamFinding, value: &[u8]| {
        let r = &rules.rules()[f.rule];
        let sample = sample(r, value);
        add(match a.format {
            Format::Jsonl => serde_json::json!({
                "rule": r.id, "category": r.category, "level": r.level.as_str(),
                "start": f.start, "end": f.end, "action": r.action.as_str(),
                "context": f.context, "sample": sample,
            })
            .to_string(),
            Format::Text => {
                format!("{}-{}\t{}\t{}\t{}\t{}\t{}", f.start, f.end, r.id, r.level, r.category, r.action, sample)
            }
        });
        Action::Allow
    };
    let read_as = match open_input(&a.input)? {
        Input::Document(doc) => {
            let out = inspect_document(&rules, &tr, &doc, &a.input, &mut decide_rule, &mut seen)?;
            format!(" in {}", out.kind.as_str())
        }
        Input::Multipart(body, boundary) => {
            // a document in a file part: its findings' locations lead with the file's name
            let mut document = |doc: &[u8], name: &str| {
                let mut seen_in = |rule: usize, f: DocFinding<'_>| {
                    seen(rule, DocFinding { location: format!("{name}: {}", f.location), ..f });
                };
                inspect_document(&rules, &tr, doc, std::path::Path::new(name), &mut decide_rule, &mut seen_in)?;
                Ok(None)
            };
            multipart(&rules, &tr, &body, &boundary, true, &mut decide, &mut document)?;
            " in multipart data".to_string()
        }
        input => {
            let form = matches!(input, Input::Form(_));
            match stream(&rules, &tr, input, &a.input, true, &mut io::sink(), &mut decide)? {
                Some(c) => format!(" in {} text", c.name()),
                None if form => " in form data".to_string(),
                None => String::new(),
            }
        }
    };
    let (lines, count) = report.into_inner();
    w.write_all(&lines)?;
    if matches!(a.format, Format::Text) {
        writeln!(w, "{count} finding(s){read_as}")?;
    }
    w.flush()?;
    Ok(())
}

fn mask(a: MaskArgs) -> Result<()> {
    if let Some(dept) = &a.department {
        return mask_as(&a, dept);
    }
    let rules = load_rules(&a.rules.rules)?;
    let key = match &a.hash_key {
        Some(p) => HashKey::from_file(p).map_err(anyhow::Error::msg)?,
        None => crate::config::random_key().map_err(anyhow::Error::msg)?,
    };
    let key = if a.hash_algorithm == "hmac-sm3" { key.sm3() } else { key };
    let tr = Transformer::new(key);
    let mut w = output(a.output.as_ref())?;
    // a file has no request to refuse: `block` findings are redacted
    let act = |rule: usize| match rules.rules()[rule].action {
        Action::Block => Action::Redact,
        a => a,
    };
    mask_input(&rules, &tr, &a.input, &act, &mut w)
}

/// `mask --department`: what the gateway would deliver to `dept` as a response body on the route.
fn mask_as(a: &MaskArgs, dept: &str) -> Result<()> {
    let snap = crate::config::load(&a.config).map_err(|e| {
        eprintln!("{e}");
        anyhow::anyhow!("{}: {} problem(s)", a.config.display(), e.0.len())
    })?;
    let ids = |names: Vec<&str>| names.join(", ");
    let Some(d) = snap.departments.iter().position(|x| x.id == dept) else {
        bail!("unknown department {dept:?} (known: {})", ids(snap.departments.iter().map(|x| x.id.as_str()).collect()));
    };
    let r = match &a.route {
        Some(id) => snap.routes.iter().position(|x| &x.id == id).ok_or_else(|| {
            anyhow::anyhow!(
                "unknown route {id:?} (known: {})",
                ids(snap.routes.iter().map(|x| x.id.as_str()).collect())
            )
        })?,
        None => 0,
    };
    let Some(route) = snap.routes.get(r) else { bail!("{}: no routes", a.config.display()) };
    let mut w = output(a.output.as_ref())?;
    let act = |rule: usize| match route.decision(
        crate::policy::DeptId(d),
        crate::policy::Direction::Response,
        crate::engine::RuleId(rule),
    ) {
        // a route that does not inspect responses delivers them as they are
        _ if !route.inspect.response => Action::Allow,
        // the gateway would refuse the whole response; a file shows where, redacted
        Action::Block => Action::Redact,
        act => act,
    };
    mask_input(&snap.rules, &snap.transformer, &a.input, &act, &mut w)
}

fn rules_test(dirs: &[PathBuf]) -> Result<()> {
    // load without the example gate so every failure is listed per rule
    let rules = match load_rules(dirs) {
        Ok(r) => r,
        Err(e) => bail!("{e}"),
    };
    let report = rules.test_examples();
    let mut out = io::stdout().lock();
    for (id, n, fails) in &report.per_rule {
        let status = if fails.is_empty() { "ok" } else { "FAIL" };
        writeln!(out, "{status:4} {id:24} {n} example(s)")?;
        for f in fails {
            writeln!(out, "     {f}")?;
        }
    }
    let total = report.total();
    writeln!(out, "{} rule(s), {total} example(s), {} failure(s)", report.per_rule.len(), report.failures())?;
    if total == 0 {
        bail!("no examples ran");
    }
    if report.failures() > 0 {
        bail!("{} example(s) failed", report.failures());
    }
    Ok(())
}

fn demo(o: crate::gateway::demo::DemoOptions) -> Result<()> {
    let path = crate::gateway::demo::prepare(&o)?;
    crate::gateway::demo::start_backend(o.backend)?;
    eprintln!("{}", crate::gateway::demo::walkthrough(&o));
    crate::gateway::server::run_server(&path, Default::default())
}

fn check(path: &std::path::Path, print: bool, connect: bool) -> Result<()> {
    let snap = match crate::config::load(path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            // (the second stage needs a configuration that reads: say it has not run yet)
            let later =
                if path.exists() { " (certificates, keys and CA bundles are opened once these are fixed)" } else { "" };
            bail!("{}: {} problem(s){later}", path.display(), e.0.len());
        }
    };
    // the same second stage as run and reload: certificates, keys, upstream CA bundles
    let snap = match crate::gateway::state::Active::new(snap) {
        Ok(a) => a,
        Err(errs) => {
            for e in &errs {
                eprintln!("{}: {e}", path.display());
            }
            bail!("{}: {} problem(s)", path.display(), errs.len());
        }
    };
    if connect {
        if let Some(cl) = &snap.cluster {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            match rt.block_on(crate::gateway::quota_store::ping(cl)) {
                Ok(_) => println!("{}: cluster.redis: {} answers", path.display(), cl.url),
                Err(e) => bail!("{}: cluster.redis: {}: {e}", path.display(), cl.url),
            }
        }
    }
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "{}: ok ({} listener(s), {} route(s), {} department(s), {} rule(s))",
        path.display(),
        snap.listeners.len(),
        snap.routes.len(),
        snap.departments.len(),
        snap.rules.rules().len()
    )?;
    if print {
        use crate::policy::Direction;
        for d in &snap.departments {
            writeln!(out, "\ndepartment {} ({}), clearance {}", d.id, d.name, d.clearance.as_str())?;
            for r in &snap.routes {
                let p = &snap.policies[r.policy];
                for dir in [Direction::Request, Direction::Response] {
                    let acts: Vec<String> = snap
                        .rules
                        .rules()
                        .iter()
                        .map(|rule| (rule, p.decide(rule, d, &r.id, dir)))
                        .filter(|(_, a)| *a != Action::Allow)
                        .map(|(rule, a)| format!("{}={a}", rule.id))
                        .collect();
                    let acts = if acts.is_empty() { "everything allowed".to_string() } else { acts.join(" ") };
                    writeln!(out, "  route {:12} {:8} {}", r.id, dir.as_str(), acts)?;
                }
            }
        }
    }
    Ok(())
}
