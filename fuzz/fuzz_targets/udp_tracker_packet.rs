//! UDP tracker packets (BEP15): requests and responses (both address families) never panic,
//! and what parses re-encodes to something that parses the same.
#![no_main]

use fxtor_proto::tracker::udp::{AddressFamily, UdpRequest, UdpResponse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = UdpRequest::parse(data) {
        assert_eq!(
            UdpRequest::parse(&request.encode()).expect("re-parses"),
            request
        );
    }
    for family in [AddressFamily::V4, AddressFamily::V6] {
        if let Ok(response) = UdpResponse::parse(data, family) {
            let again = UdpResponse::parse(&response.encode(family), family).expect("re-parses");
            assert_eq!(again, response);
        }
    }
});
