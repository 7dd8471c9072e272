//! Bencode: decoding never panics, in either mode; lenient decoding knows whether strict
//! decoding would succeed; whatever decodes re-encodes canonically and that encoding decodes
//! strictly to the same value.
#![no_main]

use fxtor_proto::bencode::{self, Mode, OwnedValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let strict = bencode::decode(data, Mode::Strict);
    if let Ok(doc) = bencode::decode(data, Mode::Lenient) {
        assert_eq!(doc.raw(), data);
        assert_eq!(doc.is_canonical(), strict.is_ok());
        let canonical = bencode::to_vec(&doc.root());
        let again = bencode::decode(&canonical, Mode::Strict).expect("canonical output decodes strictly");
        assert_eq!(OwnedValue::from(&again.root()), OwnedValue::from(&doc.root()));
    }
});
