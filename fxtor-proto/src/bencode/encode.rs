use bytes::BufMut;

use super::value::{Kind, Value};

/// Writes `i<n>e`.
pub fn write_int(out: &mut impl BufMut, n: i64) {
    let mut buf = itoa::Buffer::new();
    out.put_u8(b'i');
    out.put_slice(buf.format(n).as_bytes());
    out.put_u8(b'e');
}

/// Writes `<len>:<bytes>`.
pub fn write_bytes(out: &mut impl BufMut, bytes: &[u8]) {
    let mut buf = itoa::Buffer::new();
    out.put_slice(buf.format(bytes.len()).as_bytes());
    out.put_u8(b':');
    out.put_slice(bytes);
}

/// Writes the canonical encoding of a decoded value: dictionary keys sorted (the first of
/// repeated keys kept), integers and lengths without leading zeros.
pub fn write_value(out: &mut impl BufMut, value: &Value<'_>) {
    match value.kind() {
        Kind::Int(i) => write_int(out, i),
        Kind::Bytes(b) => write_bytes(out, b),
        Kind::List(items) => {
            out.put_u8(b'l');
            items.iter().for_each(|v| write_value(out, &v));
            out.put_u8(b'e');
        }
        Kind::Dict(dict) => {
            let mut entries: Vec<_> = dict.iter().enumerate().collect();
            // Stable order: by key, then by position, so the first of a repeated key leads.
            entries.sort_by(|(ia, (ka, _)), (ib, (kb, _))| ka.cmp(kb).then(ia.cmp(ib)));
            entries.dedup_by(|(_, (kb, _)), (_, (ka, _))| ka == kb);
            out.put_u8(b'd');
            for (_, (k, v)) in entries {
                write_bytes(out, k);
                write_value(out, &v);
            }
            out.put_u8(b'e');
        }
    }
}

/// The canonical encoding of a decoded value.
pub fn to_vec(value: &Value<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.raw().len());
    write_value(&mut out, value);
    out
}

#[cfg(test)]
mod tests {
    use super::super::{decode, Mode, OwnedValue};
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lenient_input_is_canonicalised() {
        let v = decode(b"d1:bi01e1:ai-0e1:bi2ee", Mode::Lenient).unwrap();
        assert!(!v.is_canonical());
        assert_eq!(to_vec(&v.root()), b"d1:ai0e1:bi1ee");
    }

    fn owned_value() -> impl Strategy<Value = OwnedValue> {
        let leaf = prop_oneof![
            any::<i64>().prop_map(OwnedValue::Int),
            proptest::collection::vec(any::<u8>(), 0..20).prop_map(OwnedValue::from),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(OwnedValue::List),
                proptest::collection::btree_map(
                    proptest::collection::vec(any::<u8>(), 0..8).prop_map(bytes::Bytes::from),
                    inner,
                    0..8
                )
                .prop_map(OwnedValue::Dict),
            ]
        })
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_identity(v in owned_value()) {
            let bytes = v.to_vec();
            let decoded = decode(&bytes, Mode::Strict).unwrap();
            prop_assert_eq!(decoded.raw(), &bytes[..]);
            prop_assert!(decoded.is_canonical());
            prop_assert_eq!(OwnedValue::from(&decoded.root()), v);
            prop_assert_eq!(to_vec(&decoded.root()), bytes);
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(input in proptest::collection::vec(any::<u8>(), 0..256)) {
            let strict = decode(&input, Mode::Strict);
            if let Ok(v) = decode(&input, Mode::Lenient) {
                // Lenient decoding knows whether strict decoding would accept the input.
                prop_assert_eq!(v.is_canonical(), strict.is_ok());
                // Whatever lenient accepts re-encodes to something strict accepts.
                let canonical = to_vec(&v.root());
                prop_assert!(decode(&canonical, Mode::Strict).is_ok());
            }
        }

        #[test]
        fn decoding_bencode_like_bytes_never_panics(input in "[ilde0-9:-]{0,64}") {
            let strict = decode(input.as_bytes(), Mode::Strict);
            if let Ok(v) = decode(input.as_bytes(), Mode::Lenient) {
                prop_assert_eq!(v.is_canonical(), strict.is_ok());
            }
        }
    }
}
