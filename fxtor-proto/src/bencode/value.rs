use std::fmt;

/// A decoded bencode value that borrows from its input.
///
/// Besides its content it keeps its original bytes ([`raw`](Self::raw)) and where they
/// start in the input ([`offset`](Self::offset)).
#[derive(Clone, PartialEq)]
pub struct Value<'a> {
    pub(super) raw: &'a [u8],
    pub(super) offset: usize,
    pub(super) kind: Kind<'a>,
}

/// What a [`Value`] holds.
#[derive(Clone, PartialEq, Debug)]
pub enum Kind<'a> {
    /// `i…e`
    Int(i64),
    /// `N:…`, a byte string (not necessarily UTF-8).
    Bytes(&'a [u8]),
    /// `l…e`
    List(Vec<Value<'a>>),
    /// `d…e`
    Dict(Dict<'a>),
}

impl<'a> Value<'a> {
    /// The value's bytes exactly as they appeared in the input.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Where the value starts in the input.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The value's content.
    pub fn kind(&self) -> &Kind<'a> {
        &self.kind
    }

    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self.kind {
            Kind::Int(i) => Some(i),
            _ => None,
        }
    }

    /// The byte string, if this is one.
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self.kind {
            Kind::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The byte string, if this is one and it is valid UTF-8.
    pub fn as_str(&self) -> Option<&'a str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// The list's items, if this is a list.
    pub fn as_list(&self) -> Option<&[Value<'a>]> {
        match &self.kind {
            Kind::List(l) => Some(l),
            _ => None,
        }
    }

    /// The dictionary, if this is one.
    pub fn as_dict(&self) -> Option<&Dict<'a>> {
        match &self.kind {
            Kind::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// A short name of the value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            Kind::Int(_) => "integer",
            Kind::Bytes(_) => "string",
            Kind::List(_) => "list",
            Kind::Dict(_) => "dictionary",
        }
    }
}

impl fmt::Debug for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Int(i) => write!(f, "{i}"),
            Kind::Bytes(b) => match std::str::from_utf8(b) {
                Ok(s) => write!(f, "{s:?}"),
                Err(_) => write!(f, "<{} bytes>", b.len()),
            },
            Kind::List(l) => f.debug_list().entries(l).finish(),
            Kind::Dict(d) => fmt::Debug::fmt(d, f),
        }
    }
}

/// A decoded dictionary: its entries in input order.
///
/// Lookups scan linearly; bencoded dictionaries are small, and in lenient mode they need not
/// be sorted. When a key repeats (lenient mode), the first entry wins.
#[derive(Clone, PartialEq, Default)]
pub struct Dict<'a> {
    pub(super) entries: Vec<(&'a [u8], Value<'a>)>,
}

impl<'a> Dict<'a> {
    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        self.get_raw(key.as_bytes())
    }

    /// The value under a key that need not be UTF-8.
    pub fn get_raw(&self, key: &[u8]) -> Option<&Value<'a>> {
        self.entries.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The integer under `key`.
    pub fn get_int(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(Value::as_int)
    }

    /// The byte string under `key`.
    pub fn get_bytes(&self, key: &str) -> Option<&'a [u8]> {
        self.get(key).and_then(Value::as_bytes)
    }

    /// The UTF-8 string under `key`.
    pub fn get_str(&self, key: &str) -> Option<&'a str> {
        self.get(key).and_then(Value::as_str)
    }

    /// The list under `key`.
    pub fn get_list(&self, key: &str) -> Option<&[Value<'a>]> {
        self.get(key).and_then(Value::as_list)
    }

    /// The dictionary under `key`.
    pub fn get_dict(&self, key: &str) -> Option<&Dict<'a>> {
        self.get(key).and_then(Value::as_dict)
    }

    /// The entries in input order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&'a [u8], &Value<'a>)> + '_ {
        self.entries.iter().map(|(k, v)| (*k, v))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the dictionary is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl fmt::Debug for Dict<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.entries
                    .iter()
                    .map(|(k, v)| (String::from_utf8_lossy(k), v)),
            )
            .finish()
    }
}
