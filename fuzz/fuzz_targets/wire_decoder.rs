//! The peer wire decoder: a handshake then messages, fed in chunks whose sizes the input
//! chooses. Never panics; every message it yields re-encodes to a frame that decodes to the
//! same message.
#![no_main]

use bytes::BytesMut;
use fxtor_proto::wire::{Handshake, MessageDecoder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, data)) = data.split_first() else { return };
    let chunk = usize::from(split % 64) + 1;
    let mut decoder = MessageDecoder::with_max_message_len(64 * 1024);
    let mut buf = BytesMut::new();
    let mut handshake_done = split & 0x80 == 0;
    for piece in data.chunks(chunk) {
        buf.extend_from_slice(piece);
        if !handshake_done {
            match Handshake::decode(&mut buf) {
                Ok(Some(_)) => handshake_done = true,
                Ok(None) => continue,
                Err(_) => return,
            }
        }
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(message)) => {
                    let mut frame = BytesMut::from(&message.to_bytes()[..]);
                    let again = MessageDecoder::with_max_message_len(64 * 1024)
                        .decode(&mut frame)
                        .expect("our encoding decodes")
                        .expect("a whole frame");
                    assert_eq!(again, message);
                    assert!(frame.is_empty());
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
