//! YAML with positions, for rule files and the gateway's configuration.
//!
//! The text is parsed once into a tree that keeps every node's line (marked-yaml), and serde
//! types are read from that tree by a deserializer that does not stop at the first problem:
//! - every key a struct does not know is reported at its own line, and skipped;
//! - a value that does not fit is reported at its own line, its key is taken out, and the read
//!   runs again (a bounded number of times), so that every bad value is found in one pass of
//!   `dlpgate check`;
//! - [`Lines`] maps a path (`routes[2].policy`) to its line, for the checks that come after.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;

use marked_yaml::Node;
use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode};
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};

/// One problem, with its line (1-based; 0 when unknown) and the path of the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub line: usize,
    pub path: String,
    pub msg: String,
}

/// A step of a path: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn render(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) if s.is_empty() => s.push_str(k),
            Seg::Key(k) => {
                s.push('.');
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

fn line_of(node: &Node) -> usize {
    node.span().start().map_or(0, |m| m.line())
}

/// Parse YAML text into a tree with positions; the top level must be a mapping.
pub fn parse(text: &str) -> Result<Node, YamlError> {
    marked_yaml::parse_yaml(0, text).map_err(|e| {
        use marked_yaml::LoadError as L;
        let (line, msg) = match &e {
            L::TopLevelMustBeMapping(m) => (m.line(), "the top level must be a mapping".to_string()),
            L::TopLevelMustBeSequence(m) => (m.line(), "the top level must be a sequence".to_string()),
            L::UnexpectedAnchor(m) => (m.line(), "anchors are not supported".to_string()),
            L::MappingKeyMustBeScalar(m) => (m.line(), "mapping keys must be scalars".to_string()),
            L::UnexpectedTag(m) => (m.line(), "tags are not supported".to_string()),
            L::ScanError(m, s) => (m.line(), s.info().to_string()),
            L::DuplicateKey(d) => {
                (d.key.span().start().map_or(0, |m| m.line()), format!("duplicate key `{}`", d.key.as_str()))
            }
        };
        YamlError { line, path: String::new(), msg }
    })
}

/// Read `T` from `node`, collecting every unknown key and every bad value with its line.
pub fn from_node<T: DeserializeOwned>(node: &Node) -> Result<T, Vec<YamlError>> {
    match read(node) {
        (Some(v), errs) if errs.is_empty() => Ok(v),
        (_, errs) => Err(errs),
    }
}

/// [`from_node`], keeping what could be read: with unknown keys only (skipped), the value is
/// whole; past a bad value, it is what was left once the bad parts were taken out. Either way
/// there are errors then, so the caller reports them and may run its own checks on the rest.
pub fn read<T: DeserializeOwned>(node: &Node) -> (Option<T>, Vec<YamlError>) {
    let mut node = node.clone();
    // unknown keys of every read (a later read may no longer reach a part taken out), and the
    // bad values, with paths as they were in the file
    let mut errs: Vec<YamlError> = Vec::new();
    let mut gone = Removed::default();
    for _ in 0..64 {
        let sink = RefCell::new(Vec::new());
        let r = T::deserialize(De { node: &node, path: Vec::new(), sink: &sink });
        for (line, path, msg) in sink.into_inner() {
            let e = YamlError { line, path: render(&gone.original(&path)), msg };
            if !errs.contains(&e) {
                errs.push(e);
            }
        }
        match r {
            Ok(v) => {
                errs.sort_by_key(|e| e.line);
                return (Some(v), errs);
            }
            Err(e) => {
                let (line, path) = e.at.unwrap_or((0, Vec::new()));
                let original = gone.original(&path);
                // a field missing only because an earlier bad value was taken out is no news
                let echo = e.msg.starts_with("missing field")
                    && gone.paths.iter().any(|p| {
                        p.len() == original.len() + 1
                            && p.starts_with(&original)
                            && matches!(p.last(), Some(Seg::Key(k)) if e.msg.contains(&format!("`{k}`")))
                    });
                if !echo {
                    errs.push(YamlError { line, path: render(&original), msg: e.msg });
                }
                if path.is_empty() || !remove(&mut node, &path) {
                    break;
                }
                gone.add(original);
            }
        }
    }
    errs.sort_by_key(|e| e.line);
    (None, errs)
}

/// What was taken out of the tree, in the file's own paths: sequence indexes shift when an item
/// goes, and errors must name the item as the file has it.
#[derive(Debug, Default)]
struct Removed {
    paths: Vec<Vec<Seg>>,
}

impl Removed {
    fn add(&mut self, original: Vec<Seg>) {
        self.paths.push(original);
    }

    /// The file's path of a node at `path` in the current tree.
    fn original(&self, path: &[Seg]) -> Vec<Seg> {
        let mut out: Vec<Seg> = Vec::with_capacity(path.len());
        for seg in path {
            match seg {
                Seg::Index(i) => {
                    // the i-th item still there, counting the ones taken out of this sequence
                    let gone: Vec<usize> = self
                        .paths
                        .iter()
                        .filter(|p| p.len() == out.len() + 1 && p.starts_with(&out))
                        .filter_map(|p| match p.last() {
                            Some(Seg::Index(k)) => Some(*k),
                            _ => None,
                        })
                        .collect();
                    let mut k = 0;
                    let mut left = *i;
                    loop {
                        if !gone.contains(&k) {
                            if left == 0 {
                                break;
                            }
                            left -= 1;
                        }
                        k += 1;
                    }
                    out.push(Seg::Index(k));
                }
                key => out.push(key.clone()),
            }
        }
        out
    }
}

/// Take the node at `path` out of the tree; false when there is none.
fn remove(node: &mut Node, path: &[Seg]) -> bool {
    let Some((last, parents)) = path.split_last() else { return false };
    let mut cur = node;
    for seg in parents {
        cur = match (seg, cur) {
            (Seg::Key(k), Node::Mapping(m)) => match m.iter_mut().find(|(mk, _)| mk.as_str() == k) {
                Some((_, v)) => v,
                None => return false,
            },
            (Seg::Index(i), Node::Sequence(s)) => match s.get_mut(*i) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, cur) {
        (Seg::Key(k), Node::Mapping(m)) => {
            let key = m.keys().find(|mk| mk.as_str() == k).cloned();
            key.is_some_and(|key| m.remove(&key).is_some())
        }
        (Seg::Index(i), Node::Sequence(s)) if *i < s.len() => {
            s.remove(*i);
            true
        }
        _ => false,
    }
}

/// Lines of every node by path (`routes[2].policy`): where a key is, its line; and the text of
/// each scalar, to find a value among a node's descendants.
#[derive(Debug, Default, Clone)]
pub struct Lines(HashMap<String, (usize, Option<String>)>);

impl Lines {
    pub fn of(node: &Node) -> Lines {
        let mut map = HashMap::new();
        fn walk(node: &Node, path: &mut Vec<Seg>, line: usize, map: &mut HashMap<String, (usize, Option<String>)>) {
            map.insert(render(path), (line, node.as_scalar().map(|s| s.as_str().to_string())));
            match node {
                Node::Mapping(m) => {
                    for (k, v) in m.iter() {
                        path.push(Seg::Key(k.as_str().to_string()));
                        walk(v, path, k.span().start().map_or(0, |m| m.line()), map);
                        path.pop();
                    }
                }
                Node::Sequence(s) => {
                    for (i, v) in s.iter().enumerate() {
                        path.push(Seg::Index(i));
                        walk(v, path, line_of(v), map);
                        path.pop();
                    }
                }
                Node::Scalar(_) => {}
            }
        }
        walk(node, &mut Vec::new(), line_of(node), &mut map);
        Lines(map)
    }

    /// The line of `path`, or of its nearest ancestor that has one.
    pub fn line(&self, path: &str) -> usize {
        let mut p = path;
        loop {
            if let Some((l, _)) = self.0.get(p).filter(|l| l.0 > 0) {
                return *l;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None => return 0,
            }
        }
    }
}

impl Lines {
    /// The first line, under `under` (a path; empty for anywhere), of a key named `key` (or an
    /// item of a list so named) whose value is `value` (any value when `None`).
    pub fn find(&self, under: &str, key: &str, value: Option<&str>) -> Option<usize> {
        self.0
            .iter()
            .filter(|(p, (l, v))| {
                let inside =
                    under.is_empty() || p.starts_with(&format!("{under}.")) || p.starts_with(&format!("{under}["));
                let own = p.strip_suffix(']').and_then(|q| q.rsplit_once('[')).map_or(p.as_str(), |(q, _)| q);
                let named = own == key || own.ends_with(&format!(".{key}"));
                inside && named && *l > 0 && value.is_none_or(|want| v.as_deref() == Some(want))
            })
            .map(|(_, (l, _))| *l)
            .min()
    }
}

/// A deserializer error, with the node it happened at once known.
#[derive(Debug)]
pub struct DeError {
    msg: String,
    at: Option<(usize, Vec<Seg>)>,
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError { msg: msg.to_string(), at: None }
    }
}

struct De<'a> {
    node: &'a Node,
    path: Vec<Seg>,
    sink: &'a RefCell<Vec<(usize, Vec<Seg>, String)>>,
}

impl<'a> De<'a> {
    fn locate<T>(&self, r: Result<T, DeError>) -> Result<T, DeError> {
        r.map_err(|mut e| {
            if e.at.is_none() {
                e.at = Some((line_of(self.node), self.path.clone()));
            }
            e
        })
    }

    fn child(&self, node: &'a Node, seg: Seg) -> De<'a> {
        let mut path = self.path.clone();
        path.push(seg);
        De { node, path, sink: self.sink }
    }

    fn scalar(&self) -> Option<&'a MarkedScalarNode> {
        self.node.as_scalar()
    }

    fn is_null(&self) -> bool {
        self.scalar().is_some_and(|s| s.may_coerce() && matches!(s.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    fn unexpected(&self) -> de::Unexpected<'a> {
        match self.node {
            Node::Scalar(s) => de::Unexpected::Str(s.as_str()),
            Node::Mapping(_) => de::Unexpected::Map,
            Node::Sequence(_) => de::Unexpected::Seq,
        }
    }
}

macro_rules! number {
    ($de:ident, $visit:ident, $t:ty) => {
        fn $de<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            let r = match self.scalar().and_then(|s| s.as_str().trim().parse::<$t>().ok()) {
                Some(n) => visitor.$visit(n),
                None => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
            };
            self.locate(r)
        }
    };
}

impl<'de, 'a> de::Deserializer<'de> for De<'a> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let r = match self.node {
            Node::Scalar(s) => {
                let t = s.as_str();
                if !s.may_coerce() {
                    visitor.visit_str(t)
                } else if self.is_null() {
                    visitor.visit_unit()
                } else if let Some(b) = s.as_bool() {
                    visitor.visit_bool(b)
                } else if let Ok(n) = t.parse::<u64>() {
                    visitor.visit_u64(n)
                } else if let Ok(n) = t.parse::<i64>() {
                    visitor.visit_i64(n)
                } else if let Ok(f) = t
                    .parse::<f64>()
                    .map_err(|_| ())
                    .and_then(|f| if t.chars().any(|c| c.is_ascii_digit()) { Ok(f) } else { Err(()) })
                {
                    visitor.visit_f64(f)
                } else {
                    visitor.visit_str(t)
                }
            }
            Node::Mapping(m) => visitor.visit_map(Map::new(&self, m, None)),
            Node::Sequence(s) => visitor.visit_seq(Seq { de: &self, items: s.iter().enumerate() }),
        };
        self.locate(r)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let r = match self.scalar().and_then(MarkedScalarNode::as_bool) {
            Some(b) => visitor.visit_bool(b),
            None => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        };
        self.locate(r)
    }

    number!(deserialize_u8, visit_u8, u8);
    number!(deserialize_u16, visit_u16, u16);
    number!(deserialize_u32, visit_u32, u32);
    number!(deserialize_u64, visit_u64, u64);
    number!(deserialize_i8, visit_i8, i8);
    number!(deserialize_i16, visit_i16, i16);
    number!(deserialize_i32, visit_i32, i32);
    number!(deserialize_i64, visit_i64, i64);
    number!(deserialize_f32, visit_f32, f32);
    number!(deserialize_f64, visit_f64, f64);

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let r = match self.scalar() {
            Some(s) => visitor.visit_str(s.as_str()),
            None => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        };
        self.locate(r)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.is_null() { visitor.visit_none() } else { visitor.visit_some(self) }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let r = if self.is_null() {
            visitor.visit_unit()
        } else {
            Err(de::Error::invalid_type(self.unexpected(), &visitor))
        };
        self.locate(r)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let r = match self.node {
            Node::Sequence(s) => visitor.visit_seq(Seq { de: &self, items: s.iter().enumerate() }),
            _ => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        };
        self.locate(r)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let r = match self.node {
            Node::Mapping(m) => visitor.visit_map(Map::new(&self, m, None)),
            _ => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        };
        self.locate(r)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let r = match self.node {
            Node::Mapping(m) => visitor.visit_map(Map::new(&self, m, Some(fields))),
            _ => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        };
        self.locate(r)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let r = match self.node {
            Node::Scalar(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            Node::Mapping(m) if m.len() == 1 => match m.iter().next() {
                Some((k, v)) => visitor
                    .visit_enum(Enum { de: self.child(v, Seg::Key(k.as_str().to_string())), variant: k.as_str() }),
                None => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
            },
            _ => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        };
        self.locate(r)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

struct Map<'d, 'a> {
    de: &'d De<'a>,
    items: Vec<(&'a MarkedScalarNode, &'a Node)>,
    next: usize,
}

impl<'d, 'a> Map<'d, 'a> {
    /// The entries of `m`; with `fields`, keys outside them are reported and skipped.
    fn new(de: &'d De<'a>, m: &'a MarkedMappingNode, fields: Option<&'static [&'static str]>) -> Self {
        let mut items = Vec::with_capacity(m.len());
        for (k, v) in m.iter() {
            match fields {
                Some(f) if !f.contains(&k.as_str()) => {
                    let mut path = de.path.clone();
                    path.push(Seg::Key(k.as_str().to_string()));
                    let expected = if f.is_empty() { "none".to_string() } else { f.join(", ") };
                    de.sink.borrow_mut().push((
                        k.span().start().map_or(0, |m| m.line()),
                        path,
                        format!("unknown field `{}`, expected one of {expected}", k.as_str()),
                    ));
                }
                _ => items.push((k, v)),
            }
        }
        Map { de, items, next: 0 }
    }
}

impl<'de> de::MapAccess<'de> for Map<'_, '_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, DeError> {
        let Some((k, _)) = self.items.get(self.next) else { return Ok(None) };
        seed.deserialize(k.as_str().into_deserializer()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some((k, v)) = self.items.get(self.next) else { return Err(de::Error::custom("value without a key")) };
        self.next += 1;
        seed.deserialize(self.de.child(v, Seg::Key(k.as_str().to_string())))
    }
}

struct Seq<'d, 'a, I> {
    de: &'d De<'a>,
    items: I,
}

impl<'de, 'a, I: Iterator<Item = (usize, &'a Node)>> de::SeqAccess<'de> for Seq<'_, 'a, I> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            Some((i, v)) => seed.deserialize(self.de.child(v, Seg::Index(i))).map(Some),
            None => Ok(None),
        }
    }
}

struct Enum<'a> {
    de: De<'a>,
    variant: &'a str,
}

impl<'de, 'a> de::EnumAccess<'de> for Enum<'a> {
    type Error = DeError;
    type Variant = De<'a>;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, De<'a>), DeError> {
        let v = seed.deserialize(self.variant.into_deserializer())?;
        Ok((v, self.de))
    }
}

impl<'de> de::VariantAccess<'de> for De<'_> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_seq(self, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(self, fields: &'static [&'static str], visitor: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_struct(self, "", fields, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Route {
        id: String,
        policy: String,
        #[serde(default)]
        port: u16,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Top {
        #[serde(default)]
        threads: Option<usize>,
        routes: Vec<Route>,
        #[serde(default)]
        mode: Mode,
    }

    #[derive(Debug, Deserialize, PartialEq, Default)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        #[default]
        Block,
        Pass,
    }

    fn read(text: &str) -> Result<Top, Vec<YamlError>> {
        from_node(&parse(text).map_err(|e| vec![e])?)
    }

    #[test]
    fn reads_what_serde_types_describe() {
        let t = read("threads: 4\nmode: pass\nroutes:\n  - {id: a, policy: p, port: 80}\n  - id: b\n    policy: q\n")
            .expect("read");
        assert_eq!(t.threads, Some(4));
        assert_eq!(t.mode, Mode::Pass);
        assert_eq!(t.routes[1], Route { id: "b".into(), policy: "q".into(), port: 0 });
        assert_eq!(read("threads: ~\nroutes: []\n").expect("null").threads, None);
    }

    #[test]
    fn every_unknown_key_and_bad_value_at_its_own_line() {
        let text = "\
threads: many
clearence: x
routes:
  - {id: a, policy: p, colour: red}
  - id: b
    policy: q
    port: 99999
  - id: c
    polcy: r
mode: sometimes
";
        let errs = read(text).expect_err("errors");
        let got: Vec<(usize, &str)> = errs.iter().map(|e| (e.line, e.path.as_str())).collect();
        assert!(got.contains(&(1, "threads")), "{errs:?}");
        assert!(got.contains(&(2, "clearence")), "{errs:?}");
        assert!(got.contains(&(4, "routes[0].colour")), "{errs:?}");
        assert!(got.contains(&(7, "routes[1].port")), "{errs:?}");
        assert!(got.contains(&(9, "routes[2].polcy")), "{errs:?}");
        assert!(got.contains(&(10, "mode")), "{errs:?}");
        assert!(errs.iter().any(|e| e.msg.contains("missing field `policy`") && e.path == "routes[2]"), "{errs:?}");
    }

    #[test]
    fn items_taken_out_do_not_shift_the_names_of_the_next() {
        let text = "routes:\n  - {id: a}\n  - {id: b}\n  - {id: c, policy: p, colour: red}\n";
        let errs = read(text).expect_err("errors");
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["routes[0]", "routes[1]", "routes[2].colour"], "{errs:?}");
        assert_eq!(errs.iter().map(|e| e.line).collect::<Vec<_>>(), [2, 3, 4]);
    }

    #[test]
    fn lines_by_path() {
        let node = parse("a: 1\nroutes:\n  - id: x\n    policy: p\n  - id: y\n    policy: p\n").expect("parse");
        let lines = Lines::of(&node);
        assert_eq!(lines.line("routes[0].policy"), 4);
        assert_eq!(lines.line("routes[1].policy"), 6);
        assert_eq!(lines.line("routes[1].nothing"), 5);
        assert_eq!(lines.line("a"), 1);
        assert_eq!(lines.find("routes[1]", "policy", Some("p")), Some(6));
        assert_eq!(lines.find("", "policy", Some("p")), Some(4));
        assert_eq!(lines.find("routes[0]", "policy", Some("q")), None);
    }

    #[test]
    fn syntax_errors_have_lines() {
        let e = parse("a: 1\nb: [1, 2\n").expect_err("syntax");
        assert!(e.line >= 2, "{e:?}");
    }
}
