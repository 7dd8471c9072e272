//! HTTP tracker responses: the announce and scrape parsers never panic on any body.
#![no_main]

use fxtor_proto::tracker::{parse_announce_response, parse_scrape_response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_announce_response(data);
    let _ = parse_scrape_response(data);
});
