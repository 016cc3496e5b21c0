//! The parsed `ml.toml` before typing: a tree of TOML values where every key and value knows
//! where it came from (a byte span in the file, or the `--set` argument that put it there).
//!
//! The `toml` crate gives spans only through `toml::Spanned`, which cannot wrap the implicit
//! tables that dotted keys create (`a.b = 1`: the table `a` has no span), nor a datetime. So the
//! tree speaks the span protocol of `serde_spanned` itself: it asks for a spanned struct and
//! accepts either the spanned form (start, end, value) or the plain value. The protocol's field
//! names are pinned by `toml` 0.8; a test parses dotted keys, inline tables and datetimes so a
//! change there cannot go unnoticed.

use std::fmt;
use std::ops::Range;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

const SPANNED_NAME: &str = "$__serde_spanned_private_Spanned";
const SPANNED_START: &str = "$__serde_spanned_private_start";
const SPANNED_END: &str = "$__serde_spanned_private_end";
const SPANNED_VALUE: &str = "$__serde_spanned_private_value";
const SPANNED_FIELDS: &[&str] = &[SPANNED_START, SPANNED_END, SPANNED_VALUE];
/// The single key of the map the `toml` deserializer hands out for a datetime.
const DATETIME_FIELD: &str = "$__toml_private_datetime";

/// Where a key or value came from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Origin {
    /// Bytes of `ml.toml`.
    File(Range<usize>),
    /// The `--set` argument with this index.
    Override(usize),
    /// A table that only exists through a dotted key (`a.b = 1`) and so has no span of its own.
    Implicit,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub origin: Origin,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    String(String),
    Integer(i64),
    Float(f64),
    Boolean(bool),
    Datetime(String),
    Array(Vec<Node>),
    Table(Vec<Entry>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub key: String,
    pub key_origin: Origin,
    pub node: Node,
}

impl Node {
    pub fn entries(&self) -> Option<&[Entry]> {
        match &self.value {
            Value::Table(entries) => Some(entries),
            _ => None,
        }
    }

    /// The entry `key` of this table, if this is a table that has it.
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.entries()?.iter().find(|e| e.key == key)
    }

    /// The entry at a dotted path (`["define", "target"]`).
    pub fn lookup(&self, path: &[&str]) -> Option<&Entry> {
        let (first, rest) = path.split_first()?;
        let entry = self.entry(first)?;
        if rest.is_empty() {
            Some(entry)
        } else {
            entry.node.lookup(rest)
        }
    }

    /// Gives every origin in this subtree to `origin` (used for values parsed out of `--set`).
    fn set_origin(&mut self, origin: &Origin) {
        self.origin = origin.clone();
        match &mut self.value {
            Value::Array(items) => items.iter_mut().for_each(|n| n.set_origin(origin)),
            Value::Table(entries) => entries.iter_mut().for_each(|e| {
                e.key_origin = origin.clone();
                e.node.set_origin(origin);
            }),
            _ => {}
        }
    }

    /// The plain TOML value, for typed deserialisation once the tree has been checked.
    pub fn to_toml(&self) -> toml::Value {
        match &self.value {
            Value::String(s) => toml::Value::String(s.clone()),
            Value::Integer(i) => toml::Value::Integer(*i),
            Value::Float(f) => toml::Value::Float(*f),
            Value::Boolean(b) => toml::Value::Boolean(*b),
            Value::Datetime(d) => d
                .parse()
                .map(toml::Value::Datetime)
                .unwrap_or_else(|_| toml::Value::String(d.clone())),
            Value::Array(items) => toml::Value::Array(items.iter().map(Node::to_toml).collect()),
            Value::Table(entries) => toml::Value::Table(
                entries
                    .iter()
                    .map(|e| (e.key.clone(), e.node.to_toml()))
                    .collect(),
            ),
        }
    }
}

/// Parses a TOML document into a tree; the error is the `toml` crate's, with its span.
pub(crate) fn parse_document(source: &str) -> Result<Node, toml::de::Error> {
    toml::from_str::<Node>(source)
}

/// Why a `--set` argument could not be applied.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum OverrideProblem {
    NoEquals,
    BadKey,
    /// `prefix` exists and is not a table, so `KEY` cannot go inside it.
    NotATable {
        prefix: String,
    },
}

/// Applies `KEY=VALUE` onto the document. VALUE is read as a TOML value, or as a string when it
/// is not one (`define.target=CAPSULE`).
pub(crate) fn apply_override(
    doc: &mut Node,
    index: usize,
    arg: &str,
) -> Result<(), OverrideProblem> {
    let (key, raw) = arg.split_once('=').ok_or(OverrideProblem::NoEquals)?;
    let path = parse_key(key.trim()).ok_or(OverrideProblem::BadKey)?;
    let origin = Origin::Override(index);
    let raw = raw.trim();
    let mut value = parse_value(raw).unwrap_or_else(|| Node {
        origin: origin.clone(),
        value: Value::String(raw.to_string()),
    });
    value.set_origin(&origin);

    let mut table = doc;
    for (depth, segment) in path.iter().enumerate() {
        let entries = match &mut table.value {
            Value::Table(entries) => entries,
            _ => {
                return Err(OverrideProblem::NotATable {
                    prefix: path[..depth].join("."),
                })
            }
        };
        let last = depth + 1 == path.len();
        let position = match entries.iter().position(|e| &e.key == segment) {
            Some(position) => position,
            None => {
                entries.push(Entry {
                    key: segment.clone(),
                    key_origin: origin.clone(),
                    node: Node {
                        origin: origin.clone(),
                        value: Value::Table(Vec::new()),
                    },
                });
                entries.len() - 1
            }
        };
        let entry = &mut entries[position];
        if last {
            entry.key_origin = origin.clone();
            entry.node = value;
            return Ok(());
        }
        table = &mut entry.node;
    }
    Err(OverrideProblem::BadKey)
}

/// A dotted TOML key (`prepare.types."my col"`) as its segments.
fn parse_key(key: &str) -> Option<Vec<String>> {
    if key.is_empty() || key.contains(['\n', '\r', '=', '#']) {
        return None;
    }
    let doc = parse_document(&format!("{key} = 0")).ok()?;
    let mut path = Vec::new();
    let mut node = &doc;
    loop {
        match node.entries() {
            Some([only]) => {
                path.push(only.key.clone());
                node = &only.node;
            }
            Some(_) => return None,
            None => return Some(path),
        }
    }
}

/// VALUE as a single TOML value, or `None` when it is not exactly one.
fn parse_value(raw: &str) -> Option<Node> {
    if raw.is_empty() || raw.contains(['\n', '\r']) {
        return None;
    }
    let doc = parse_document(&format!("value = {raw}")).ok()?;
    match doc.value {
        Value::Table(mut entries) if entries.len() == 1 && entries[0].key == "value" => {
            entries.pop().map(|e| e.node)
        }
        _ => None,
    }
}

/// A key as the `toml` deserializer hands it out: spanned when it comes from the document, plain
/// when it is one of the protocol's own field names.
struct Key {
    name: String,
    span: Option<Range<usize>>,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<Key, E> {
                Ok(Key {
                    name: name.to_string(),
                    span: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Key, A::Error> {
                let (mut start, mut end, mut name) = (None, None, None);
                while let Some(field) = map.next_key::<String>()? {
                    match field.as_str() {
                        SPANNED_START => start = Some(map.next_value::<usize>()?),
                        SPANNED_END => end = Some(map.next_value::<usize>()?),
                        SPANNED_VALUE => name = Some(map.next_value::<String>()?),
                        other => return Err(de::Error::unknown_field(other, SPANNED_FIELDS)),
                    }
                }
                let name = name.ok_or_else(|| de::Error::missing_field(SPANNED_VALUE))?;
                let span = start.zip(end).map(|(start, end)| start..end);
                Ok(Key { name, span })
            }
        }
        deserializer.deserialize_struct(SPANNED_NAME, SPANNED_FIELDS, KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_struct(SPANNED_NAME, SPANNED_FIELDS, NodeVisitor)
    }
}

/// The value inside a spanned wrapper: asking for it with `deserialize_any` keeps the
/// deserializer from wrapping it again.
struct Unspanned(Value);

impl<'de> Deserialize<'de> for Unspanned {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(NodeVisitor)
            .map(|node| Unspanned(node.value))
    }
}

struct NodeVisitor;

fn plain(value: Value) -> Node {
    Node {
        origin: Origin::Implicit,
        value,
    }
}

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a TOML value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(plain(Value::Boolean(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(plain(Value::Integer(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        i64::try_from(v)
            .map(|v| plain(Value::Integer(v)))
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Ok(plain(Value::Float(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(plain(Value::String(v.to_string())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Ok(plain(Value::String(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(plain(Value::Array(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let Some(first) = map.next_key::<Key>()? else {
            return Ok(plain(Value::Table(Vec::new())));
        };
        if first.span.is_none() && first.name == SPANNED_START {
            // The spanned form: start, end, then the value itself.
            let start = map.next_value::<usize>()?;
            let mut end = start;
            let mut value = None;
            while let Some(field) = map.next_key::<String>()? {
                match field.as_str() {
                    SPANNED_END => end = map.next_value::<usize>()?,
                    SPANNED_VALUE => value = Some(map.next_value::<Unspanned>()?.0),
                    other => return Err(de::Error::unknown_field(other, SPANNED_FIELDS)),
                }
            }
            let value = value.ok_or_else(|| de::Error::missing_field(SPANNED_VALUE))?;
            return Ok(Node {
                origin: Origin::File(start..end),
                value,
            });
        }
        if first.span.is_none() && first.name == DATETIME_FIELD {
            return Ok(plain(Value::Datetime(map.next_value::<String>()?)));
        }
        let mut entries = Vec::new();
        let mut key = Some(first);
        while let Some(Key { name, span }) = key {
            let node = map.next_value::<Node>()?;
            let key_origin = span.map_or(Origin::Implicit, Origin::File);
            entries.push(Entry {
                key: name,
                key_origin,
                node,
            });
            key = map.next_key::<Key>()?;
        }
        Ok(plain(Value::Table(entries)))
    }
}
