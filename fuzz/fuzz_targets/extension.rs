//! Every extension payload parser (BEP10 handshake, ut_metadata, ut_pex, ut_holepunch,
//! lt_donthave): never panics, and what parses re-encodes to something that parses the same.
#![no_main]

use bytes::Bytes;
use fxtor_proto::wire::extension::{
    DontHave, ExtendedHandshake, HolepunchMessage, MetadataMessage, PexMessage,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, payload)) = data.split_first() else { return };
    match which % 5 {
        0 => {
            if let Ok(m) = ExtendedHandshake::parse(payload) {
                assert_eq!(ExtendedHandshake::parse(&m.to_bytes()).expect("re-parses"), m);
            }
        }
        1 => {
            if let Ok(m) = MetadataMessage::parse(&Bytes::copy_from_slice(payload)) {
                assert_eq!(MetadataMessage::parse(&m.to_bytes()).expect("re-parses"), m);
            }
        }
        2 => {
            if let Ok(m) = PexMessage::parse(payload) {
                assert_eq!(PexMessage::parse(&m.to_bytes()).expect("re-parses"), m);
            }
        }
        3 => {
            if let Ok(m) = HolepunchMessage::parse(payload) {
                assert_eq!(HolepunchMessage::parse(&m.to_bytes()).expect("re-parses"), m);
            }
        }
        _ => {
            if let Ok(m) = DontHave::parse(payload) {
                assert_eq!(DontHave::parse(&m.to_bytes()).expect("re-parses"), m);
            }
        }
    }
});
