//! Bencode: decoding never panics, in either mode; whatever decodes re-encodes canonically and
//! that encoding decodes strictly to the same value.
#![no_main]

use fxtor_proto::bencode::{self, Mode, OwnedValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = bencode::decode(data, Mode::Strict);
    if let Ok(value) = bencode::decode(data, Mode::Lenient) {
        assert_eq!(value.raw(), data);
        let canonical = bencode::to_vec(&value);
        let again = bencode::decode(&canonical, Mode::Strict).expect("canonical output decodes strictly");
        assert_eq!(OwnedValue::from(&again), OwnedValue::from(&value));
    }
});
