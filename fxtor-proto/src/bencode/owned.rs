use std::collections::BTreeMap;

use bytes::Bytes;

use super::value::{Kind, Value};

/// A bencode value that owns its data: what is built to be encoded (torrent creation,
/// extension messages). Dictionaries are `BTreeMap`s, so encoding is canonical by
/// construction.
///
/// ```
/// use fxtor_proto::bencode::OwnedValue;
/// let mut d = OwnedValue::dict();
/// d.insert("b", OwnedValue::Int(2));
/// d.insert("a", OwnedValue::from("x"));
/// assert_eq!(d.to_vec(), b"d1:a1:x1:bi2ee");
/// ```
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum OwnedValue {
    /// An integer.
    Int(i64),
    /// A byte string.
    Bytes(Bytes),
    /// A list.
    List(Vec<OwnedValue>),
    /// A dictionary, keys in byte order.
    Dict(BTreeMap<Bytes, OwnedValue>),
}

impl OwnedValue {
    /// An empty dictionary.
    pub fn dict() -> Self {
        Self::Dict(BTreeMap::new())
    }

    /// Inserts into a dictionary; does nothing on other kinds.
    pub fn insert(&mut self, key: impl Into<Bytes>, value: impl Into<OwnedValue>) {
        if let Self::Dict(d) = self {
            d.insert(key.into(), value.into());
        }
    }

    /// Appends `value` to `self`'s encoding.
    pub fn encode(&self, out: &mut impl bytes::BufMut) {
        match self {
            Self::Int(i) => super::write_int(out, *i),
            Self::Bytes(b) => super::write_bytes(out, b),
            Self::List(items) => {
                out.put_u8(b'l');
                items.iter().for_each(|v| v.encode(out));
                out.put_u8(b'e');
            }
            Self::Dict(entries) => {
                out.put_u8(b'd');
                for (k, v) in entries {
                    super::write_bytes(out, k);
                    v.encode(out);
                }
                out.put_u8(b'e');
            }
        }
    }

    /// The canonical encoding.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

impl From<&Value<'_>> for OwnedValue {
    fn from(v: &Value<'_>) -> Self {
        match v.kind() {
            Kind::Int(i) => Self::Int(i),
            Kind::Bytes(b) => Self::Bytes(Bytes::copy_from_slice(b)),
            Kind::List(l) => Self::List(l.iter().map(|v| Self::from(&v)).collect()),
            // In lenient input a key may repeat: the first one wins, as in lookups.
            Kind::Dict(d) => {
                let mut map = BTreeMap::new();
                for (k, v) in d.iter() {
                    map.entry(Bytes::copy_from_slice(k))
                        .or_insert_with(|| Self::from(&v));
                }
                Self::Dict(map)
            }
        }
    }
}

impl From<i64> for OwnedValue {
    fn from(i: i64) -> Self {
        Self::Int(i)
    }
}

impl From<&str> for OwnedValue {
    fn from(s: &str) -> Self {
        Self::Bytes(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<String> for OwnedValue {
    fn from(s: String) -> Self {
        Self::Bytes(Bytes::from(s))
    }
}

impl From<&[u8]> for OwnedValue {
    fn from(b: &[u8]) -> Self {
        Self::Bytes(Bytes::copy_from_slice(b))
    }
}

impl From<Vec<u8>> for OwnedValue {
    fn from(b: Vec<u8>) -> Self {
        Self::Bytes(Bytes::from(b))
    }
}

impl From<Bytes> for OwnedValue {
    fn from(b: Bytes) -> Self {
        Self::Bytes(b)
    }
}

impl From<Vec<OwnedValue>> for OwnedValue {
    fn from(l: Vec<OwnedValue>) -> Self {
        Self::List(l)
    }
}
