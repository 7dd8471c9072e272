//! DHT datagrams (BEP5 KRPC, with BEP32, 42, 43, 51 fields): decoding never panics, what
//! decodes re-encodes to something that decodes the same, and a `Dht` fed the bytes
//! neither panics nor sends anything that is not a valid message.
#![no_main]

use core::net::SocketAddr;

use fxtor_proto::dht::krpc::{Message, MAX_MESSAGE_LEN};
use fxtor_proto::dht::{Dht, DhtConfig};
use fxtor_proto::time::Instant;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = Message::decode(data) {
        let bytes = message.to_vec();
        if bytes.len() <= MAX_MESSAGE_LEN {
            assert_eq!(Message::decode(&bytes).expect("re-decodes"), message);
        }
    }
    let from: SocketAddr = "127.0.0.1:6881".parse().expect("an address");
    let now = Instant::ZERO;
    let mut dht = Dht::new(now, DhtConfig { seed: 1, ..DhtConfig::default() });
    // A ping in flight, so that an answer to it can be found (transaction ids replay from
    // the seed).
    dht.add_node(now, from);
    while dht.poll_transmit().is_some() {}
    dht.handle_datagram(now, from, data);
    dht.handle_timeout(Instant::from_secs(10));
    while let Some(datagram) = dht.poll_transmit() {
        Message::decode(&datagram.data).expect("what the DHT sends decodes");
    }
    while dht.poll_event().is_some() {}
});
