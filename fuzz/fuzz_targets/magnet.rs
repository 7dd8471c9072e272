//! Magnet links: parsing never panics; a parsed link formats to one that parses the same.
#![no_main]

use fxtor_proto::magnet::MagnetLink;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(link) = text.parse::<MagnetLink>() {
        let again: MagnetLink = link.to_string().parse().expect("a formatted link parses");
        assert_eq!(again, link);
    }
});
