//! Decoded bencode stored flat: a [`Document`] holds one [`Node`] per value and per dictionary
//! key, in input order, each list or dictionary followed by everything inside it and knowing
//! how many nodes that is. [`Value`], [`List`] and [`Dict`] are small `Copy` views into the
//! document; what they return (strings, raw bytes) points into the input.
//!
//! Keeping the nodes in one vector costs one allocation per decode instead of one per list
//! and dictionary, and skipping over a container to its next sibling is a jump, not a walk.

use std::fmt;

/// What one node is, and whether it is canonical bencode (what
/// [`Mode::Strict`](super::Mode::Strict) accepts), everything inside it included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    /// `i…e`; the number is read from the input when asked for.
    Int {
        /// See [`Node::canonical`].
        canonical: bool,
    },
    /// `N:…`; the string's bytes start at `body`, after the colon.
    Bytes {
        /// Offset of the string's first byte.
        body: u32,
        /// See [`Node::canonical`].
        canonical: bool,
    },
    /// `l…e`, whose items take the `descendants` nodes after it.
    List {
        /// Number of nodes inside the list, at any depth.
        descendants: u32,
        /// See [`Node::canonical`].
        canonical: bool,
    },
    /// `d…e`, whose entries (each a key node then its value's nodes) take the `descendants`
    /// nodes after it.
    Dict {
        /// Number of nodes inside the dictionary (keys included), at any depth.
        descendants: u32,
        /// See [`Node::canonical`].
        canonical: bool,
    },
}

/// One value or dictionary key of a [`Document`]: where it ends in the input, and its shape.
///
/// Where it starts is not stored (only, for a string, where its bytes start): the root
/// starts the input, the first item of a container starts just after the container's first
/// byte, and every other value or key starts where the one before it ended. Views
/// ([`Value`], the iterators) carry that position along.
///
/// Offsets are `u32`: the decoder refuses inputs of 4 GiB or more. A node takes 12 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Node {
    /// Offset just past the value's last byte.
    pub(super) end: u32,
    pub(super) shape: Shape,
}

impl Node {
    /// The number of nodes inside this one (0 for integers and strings).
    fn descendants(&self) -> usize {
        match self.shape {
            Shape::List { descendants, .. } | Shape::Dict { descendants, .. } => {
                descendants as usize
            }
            Shape::Int { .. } | Shape::Bytes { .. } => 0,
        }
    }

    /// Whether the value, everything inside it included, is canonical.
    pub(super) fn canonical(&self) -> bool {
        match self.shape {
            Shape::Int { canonical }
            | Shape::Bytes { canonical, .. }
            | Shape::List { canonical, .. }
            | Shape::Dict { canonical, .. } => canonical,
        }
    }

    /// The bytes of a string node (empty for other nodes).
    fn string_bytes<'a>(&self, input: &'a [u8]) -> &'a [u8] {
        match self.shape {
            Shape::Bytes { body, .. } => span(input, body, self.end),
            _ => &[],
        }
    }
}

/// A decoded bencode value with everything inside it, borrowing its input.
///
/// The [`root`](Self::root) is what was decoded; for convenience the document also answers
/// the root's questions directly (`doc.as_dict()` is `doc.root().as_dict()`).
///
/// ```
/// use fxtor_proto::bencode::{self, Mode};
///
/// let doc = bencode::decode(b"d4:listli1ei2ee4:name3:fooe", Mode::Strict).unwrap();
/// let dict = doc.as_dict().unwrap();
/// let items: Vec<i64> = dict.get_list("list").unwrap().iter().filter_map(|v| v.as_int()).collect();
/// assert_eq!(items, [1, 2]);
/// assert_eq!(dict.get("name").unwrap().raw(), b"3:foo");
/// assert_eq!(dict.get("name").unwrap().offset(), 21);
/// ```
#[derive(Clone)]
pub struct Document<'a> {
    pub(super) input: &'a [u8],
    pub(super) root: Node,
    /// The root's descendants, in input order.
    pub(super) nodes: Vec<Node>,
}

impl<'a> Document<'a> {
    /// The decoded value.
    pub fn root(&self) -> Value<'_> {
        Value {
            input: self.input,
            start: 0,
            node: self.root,
            descendants: &self.nodes,
        }
    }

    /// The root's bytes exactly as they appeared in the input.
    pub fn raw(&self) -> &'a [u8] {
        span(self.input, 0, self.root.end)
    }

    /// The root's content.
    pub fn kind(&self) -> Kind<'_> {
        self.root().kind()
    }

    /// The root integer, if it is one.
    pub fn as_int(&self) -> Option<i64> {
        self.root().as_int()
    }

    /// The root byte string, if it is one.
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self.root.shape {
            Shape::Bytes { .. } => Some(self.root.string_bytes(self.input)),
            _ => None,
        }
    }

    /// The root byte string, if it is one and valid UTF-8.
    pub fn as_str(&self) -> Option<&'a str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// The root list, if it is one.
    pub fn as_list(&self) -> Option<List<'_>> {
        self.root().as_list()
    }

    /// The root dictionary, if it is one.
    pub fn as_dict(&self) -> Option<Dict<'_>> {
        self.root().as_dict()
    }

    /// A short name of the root's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        self.root().type_name()
    }

    /// Whether the whole document is canonical bencode: what [`Mode::Strict`] accepts.
    ///
    /// [`Mode::Strict`]: super::Mode::Strict
    pub fn is_canonical(&self) -> bool {
        self.root.canonical()
    }
}

impl fmt::Debug for Document<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.root(), f)
    }
}

/// `input[start..end]`; empty if the range is not in the input, which never happens for the
/// spans the decoder records.
fn span(input: &[u8], start: u32, end: u32) -> &[u8] {
    input.get(start as usize..end as usize).unwrap_or_default()
}

/// One decoded bencode value, a view into a [`Document`] (its lifetime is the document's
/// borrow; what it returns points into the input).
///
/// Besides its content it knows its original bytes ([`raw`](Self::raw)) and where they
/// start in the input ([`offset`](Self::offset)). It is `Copy`: pass it by value. Two
/// values are equal when they are the same bytes at the same offset.
#[derive(Clone, Copy)]
pub struct Value<'a> {
    input: &'a [u8],
    /// Offset of the value's first byte.
    start: u32,
    node: Node,
    /// The nodes inside this value.
    descendants: &'a [Node],
}

/// What a [`Value`] holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind<'a> {
    /// `i…e`
    Int(i64),
    /// `N:…`, a byte string (not necessarily UTF-8).
    Bytes(&'a [u8]),
    /// `l…e`
    List(List<'a>),
    /// `d…e`
    Dict(Dict<'a>),
}

impl<'a> Value<'a> {
    /// The value's bytes exactly as they appeared in the input.
    pub fn raw(&self) -> &'a [u8] {
        span(self.input, self.start, self.node.end)
    }

    /// Where the value starts in the input.
    pub fn offset(&self) -> usize {
        self.start as usize
    }

    /// Whether the value, and everything inside it, is canonical bencode: what
    /// [`Mode::Strict`](super::Mode::Strict) accepts (sorted unique keys, no leading zeros,
    /// no `-0`).
    pub fn is_canonical(&self) -> bool {
        self.node.canonical()
    }

    /// The value's content.
    pub fn kind(&self) -> Kind<'a> {
        match self.node.shape {
            // The decoder checked the integer, so reading it again cannot fail; 0 is never
            // reached.
            Shape::Int { .. } => Kind::Int(parse_int(self.raw()).unwrap_or_default()),
            Shape::Bytes { .. } => Kind::Bytes(self.node.string_bytes(self.input)),
            Shape::List { .. } => Kind::List(List(self.items())),
            Shape::Dict { .. } => Kind::Dict(Dict(self.items())),
        }
    }

    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self.node.shape {
            Shape::Int { .. } => parse_int(self.raw()),
            _ => None,
        }
    }

    /// The byte string, if this is one.
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self.node.shape {
            Shape::Bytes { .. } => Some(self.node.string_bytes(self.input)),
            _ => None,
        }
    }

    /// The byte string, if this is one and it is valid UTF-8.
    pub fn as_str(&self) -> Option<&'a str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// The list, if this is one.
    pub fn as_list(&self) -> Option<List<'a>> {
        match self.node.shape {
            Shape::List { .. } => Some(List(self.items())),
            _ => None,
        }
    }

    /// The dictionary, if this is one.
    pub fn as_dict(&self) -> Option<Dict<'a>> {
        match self.node.shape {
            Shape::Dict { .. } => Some(Dict(self.items())),
            _ => None,
        }
    }

    /// The items (or entries) inside this list (or dictionary).
    fn items(&self) -> Nodes<'a> {
        Nodes {
            input: self.input,
            // Just after the `l` or `d`.
            start: self.start + 1,
            nodes: self.descendants,
        }
    }

    /// A short name of the value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self.node.shape {
            Shape::Int { .. } => "integer",
            Shape::Bytes { .. } => "string",
            Shape::List { .. } => "list",
            Shape::Dict { .. } => "dictionary",
        }
    }

    /// Splits the value at the front of `nodes`, starting at `start`, from the nodes after it.
    fn split_first(input: &'a [u8], start: u32, nodes: &'a [Node]) -> Option<(Self, &'a [Node])> {
        let (&node, rest) = nodes.split_first()?;
        let (descendants, rest) = rest.split_at_checked(node.descendants())?;
        let value = Self {
            input,
            start,
            node,
            descendants,
        };
        Some((value, rest))
    }
}

/// Reads `i<n>e` as the decoder checked it: an optional `-`, then digits.
fn parse_int(raw: &[u8]) -> Option<i64> {
    let digits = raw.strip_prefix(b"i")?.strip_suffix(b"e")?;
    let (negative, digits) = match digits.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, digits),
    };
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        let d = i64::from(d - b'0');
        // Accumulating negatively reaches i64::MIN, whose magnitude i64 cannot hold.
        n = n.checked_mul(10)?;
        n = if negative {
            n.checked_sub(d)?
        } else {
            n.checked_add(d)?
        };
    }
    Some(n)
}

impl PartialEq for Value<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.start == other.start && self.raw() == other.raw()
    }
}

impl fmt::Debug for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind() {
            Kind::Int(i) => write!(f, "{i}"),
            Kind::Bytes(b) => match std::str::from_utf8(b) {
                Ok(s) => write!(f, "{s:?}"),
                Err(_) => write!(f, "<{} bytes>", b.len()),
            },
            Kind::List(l) => fmt::Debug::fmt(&l, f),
            Kind::Dict(d) => fmt::Debug::fmt(&d, f),
        }
    }
}

/// The contents of a list or dictionary: its nodes and where the first starts.
#[derive(Clone, Copy, Default)]
struct Nodes<'a> {
    input: &'a [u8],
    /// Offset of the first item (or key).
    start: u32,
    nodes: &'a [Node],
}

/// A decoded list: a view of its items.
///
/// Items are reached by walking from the first ([`iter`](Self::iter)); each step skips a
/// whole item, however large. Counting them ([`len`](Self::len)) is such a walk too.
#[derive(Clone, Copy, Default)]
pub struct List<'a>(Nodes<'a>);

impl<'a> List<'a> {
    /// The items in order.
    pub fn iter(&self) -> Items<'a> {
        Items(self.0)
    }

    /// The item at `index` (found by walking the items before it).
    pub fn get(&self, index: usize) -> Option<Value<'a>> {
        self.iter().nth(index)
    }

    /// Number of items (counted by walking them).
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.nodes.is_empty()
    }
}

impl<'a> IntoIterator for List<'a> {
    type Item = Value<'a>;
    type IntoIter = Items<'a>;

    fn into_iter(self) -> Items<'a> {
        self.iter()
    }
}

impl PartialEq for List<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl fmt::Debug for List<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The items of a [`List`].
#[derive(Clone)]
pub struct Items<'a>(Nodes<'a>);

impl<'a> Iterator for Items<'a> {
    type Item = Value<'a>;

    fn next(&mut self) -> Option<Value<'a>> {
        let rest = &mut self.0;
        let (value, nodes) = Value::split_first(rest.input, rest.start, rest.nodes)?;
        rest.nodes = nodes;
        rest.start = value.node.end;
        Some(value)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        // Each item takes at least one node.
        (
            usize::from(!self.0.nodes.is_empty()),
            Some(self.0.nodes.len()),
        )
    }
}

/// A decoded dictionary: a view of its entries in input order.
///
/// Lookups scan the entries (each step skips a whole value); bencoded dictionaries are
/// small, and in lenient mode they need not be sorted. When a key repeats (lenient mode),
/// the first entry wins.
#[derive(Clone, Copy, Default)]
pub struct Dict<'a>(Nodes<'a>);

impl<'a> Dict<'a> {
    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<Value<'a>> {
        self.get_raw(key.as_bytes())
    }

    /// The value under a key that need not be UTF-8.
    pub fn get_raw(&self, key: &[u8]) -> Option<Value<'a>> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The integer under `key`.
    pub fn get_int(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(|v| v.as_int())
    }

    /// The byte string under `key`.
    pub fn get_bytes(&self, key: &str) -> Option<&'a [u8]> {
        self.get(key).and_then(|v| v.as_bytes())
    }

    /// The UTF-8 string under `key`.
    pub fn get_str(&self, key: &str) -> Option<&'a str> {
        self.get(key).and_then(|v| v.as_str())
    }

    /// The list under `key`.
    pub fn get_list(&self, key: &str) -> Option<List<'a>> {
        self.get(key).and_then(|v| v.as_list())
    }

    /// The dictionary under `key`.
    pub fn get_dict(&self, key: &str) -> Option<Dict<'a>> {
        self.get(key).and_then(|v| v.as_dict())
    }

    /// The entries in input order.
    pub fn iter(&self) -> Entries<'a> {
        Entries(self.0)
    }

    /// Number of entries (counted by walking them).
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether the dictionary is empty.
    pub fn is_empty(&self) -> bool {
        self.0.nodes.is_empty()
    }
}

impl<'a> IntoIterator for Dict<'a> {
    type Item = (&'a [u8], Value<'a>);
    type IntoIter = Entries<'a>;

    fn into_iter(self) -> Entries<'a> {
        self.iter()
    }
}

impl PartialEq for Dict<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl fmt::Debug for Dict<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(k, v)| (String::from_utf8_lossy(k), v)))
            .finish()
    }
}

/// The entries of a [`Dict`]: each key's bytes and its value.
#[derive(Clone)]
pub struct Entries<'a>(Nodes<'a>);

impl<'a> Iterator for Entries<'a> {
    type Item = (&'a [u8], Value<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = &mut self.0;
        // Every key is a byte string (the decoder refuses anything else): one node.
        let (key, nodes) = rest.nodes.split_first()?;
        let key_bytes = key.string_bytes(rest.input);
        let (value, nodes) = Value::split_first(rest.input, key.end, nodes)?;
        rest.nodes = nodes;
        rest.start = value.node.end;
        Some((key_bytes, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        // Each entry takes at least two nodes.
        let nodes = self.0.nodes.len();
        (usize::from(nodes > 0), Some(nodes / 2))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{decode, decode_prefix, Limits, Mode, OwnedValue};
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_node_takes_12_bytes() {
        assert_eq!(std::mem::size_of::<Node>(), 12);
    }

    #[test]
    fn lists_and_dictionaries_are_walked() {
        let input = b"d1:ali1eli2ei3ee0:e1:bde1:cle1:di-4ee";
        let doc = decode(input, Mode::Strict).unwrap();
        let dict = doc.as_dict().unwrap();
        assert_eq!(dict.len(), 4);
        let keys: Vec<&[u8]> = dict.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, [&b"a"[..], b"b", b"c", b"d"]);
        let a = dict.get_list("a").unwrap();
        assert_eq!((a.len(), a.is_empty()), (3, false));
        assert_eq!(a.get(0).unwrap().as_int(), Some(1));
        assert_eq!(a.get(1).unwrap().raw(), b"li2ei3ee");
        assert_eq!(a.get(1).unwrap().offset(), 8);
        assert_eq!(a.get(2).unwrap().as_bytes(), Some(&b""[..]));
        assert_eq!(a.get(3), None);
        assert_eq!(a.iter().count(), 3);
        let inner: Vec<i64> = a
            .get(1)
            .unwrap()
            .as_list()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_int())
            .collect();
        assert_eq!(inner, [2, 3]);
        assert!(dict.get_dict("b").unwrap().is_empty());
        assert!(dict.get_list("c").unwrap().is_empty());
        assert_eq!(dict.get("c").unwrap().offset(), 27);
        assert_eq!(dict.get_int("d"), Some(-4));
        assert_eq!(dict.get("e"), None);
        assert_eq!(dict.get("b").unwrap().type_name(), "dictionary");
        assert!(matches!(dict.get("a").unwrap().kind(), Kind::List(l) if l.len() == 3));
        assert_eq!(
            format!("{doc:?}"),
            r#"{"a": [1, [2, 3], ""], "b": {}, "c": [], "d": -4}"#
        );
        // Equal views: the same bytes at the same place.
        assert_eq!(dict.get("a"), dict.iter().next().map(|(_, v)| v));
        assert_ne!(a.get(0), a.get(1));
        assert_eq!(doc.as_dict(), doc.root().as_dict());
    }

    #[test]
    fn a_document_answers_for_its_root() {
        let doc = decode(b"4:spam", Mode::Strict).unwrap();
        assert_eq!(
            (doc.as_bytes(), doc.as_str()),
            (Some(&b"spam"[..]), Some("spam"))
        );
        assert_eq!(
            (doc.as_int(), doc.type_name(), doc.raw()),
            (None, "string", &b"4:spam"[..])
        );
        assert!(doc.as_list().is_none() && doc.as_dict().is_none());
        let doc = decode(b"i-17e", Mode::Strict).unwrap();
        assert_eq!(doc.kind(), Kind::Int(-17));
        assert_eq!(doc.root().offset(), 0);
    }

    #[test]
    fn lenient_values_know_they_are_not_canonical() {
        for input in [
            &b"i03e"[..],
            b"i-0e",
            b"03:abc",
            b"d1:bi1e1:ai2ee",
            b"d1:ai1e1:ai2ee",
            b"d02:abi1ee",
            b"l1:ali01eee",
        ] {
            let doc = decode(input, Mode::Lenient).unwrap();
            assert!(!doc.is_canonical(), "{:?}", String::from_utf8_lossy(input));
        }
        // Only the values holding what strict mode refuses are marked.
        let doc = decode(b"d1:ai1e1:bli02eee", Mode::Lenient).unwrap();
        let dict = doc.as_dict().unwrap();
        assert!(dict.get("a").unwrap().is_canonical());
        assert!(!dict.get("b").unwrap().is_canonical());
        assert!(!doc.is_canonical());
    }

    /// Checks the spans of `value` and of everything in it against `input`.
    fn check_spans(input: &[u8], value: Value<'_>) -> Result<(), TestCaseError> {
        let raw = value.raw();
        prop_assert_eq!(
            input.get(value.offset()..value.offset() + raw.len()),
            Some(raw)
        );
        // Each value's bytes are one whole value.
        let (alone, used) = decode_prefix(raw, Mode::Lenient, Limits::default()).unwrap();
        prop_assert_eq!(used, raw.len());
        prop_assert_eq!(OwnedValue::from(&alone.root()), OwnedValue::from(&value));
        let mut end = value.offset() + 1;
        let mut check_item = |item: Value<'_>| {
            prop_assert!(item.offset() >= end);
            end = item.offset() + item.raw().len();
            prop_assert!(end < value.offset() + raw.len());
            check_spans(input, item)
        };
        match value.kind() {
            Kind::List(list) => list.iter().try_for_each(&mut check_item)?,
            Kind::Dict(dict) => dict.iter().try_for_each(|(_, v)| check_item(v))?,
            Kind::Int(_) | Kind::Bytes(_) => {}
        }
        Ok(())
    }

    fn owned_value() -> impl Strategy<Value = OwnedValue> {
        let leaf = prop_oneof![
            any::<i64>().prop_map(OwnedValue::Int),
            proptest::collection::vec(any::<u8>(), 0..12).prop_map(OwnedValue::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(OwnedValue::List),
                proptest::collection::btree_map(
                    proptest::collection::vec(any::<u8>(), 0..6).prop_map(bytes::Bytes::from),
                    inner,
                    0..6
                )
                .prop_map(OwnedValue::Dict),
            ]
        })
    }

    proptest! {
        /// Every value of a document, at any depth, knows exactly where it is.
        #[test]
        fn every_value_knows_its_span(value in owned_value()) {
            let input = value.to_vec();
            let doc = decode(&input, Mode::Strict).unwrap();
            check_spans(&input, doc.root())?;
        }
    }
}
