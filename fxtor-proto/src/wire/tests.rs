//! Tests of the message codec as a whole: exact bytes of every message, malformed input,
//! limits, zero copy, and property tests over arbitrary streams.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::*;
use crate::{PieceIndex, Sha256Hash};

fn decode_all(bytes: &[u8]) -> Result<Option<Message>, WireError> {
    let mut buf = BytesMut::from(bytes);
    let msg = MessageDecoder::new().decode(&mut buf);
    if let Ok(Some(_)) = msg {
        assert!(buf.is_empty(), "the decoder left {} bytes", buf.len());
    }
    msg
}

/// Checks that `msg` encodes to exactly `expected` and decodes back from it.
#[track_caller]
fn check(msg: Message, expected: &[u8]) {
    let mut out = Vec::new();
    msg.encode(&mut out);
    assert_eq!(out, expected, "encoding of {msg:?}");
    assert_eq!(msg.encoded_len(), expected.len());
    assert_eq!(&msg.to_bytes()[..], expected);
    assert_eq!(decode_all(expected), Ok(Some(msg)));
}

fn request() -> BlockRequest {
    BlockRequest {
        piece: PieceIndex(1),
        offset: 0x4000,
        length: 0x4000,
    }
}

const REQUEST_BYTES: [u8; 12] = [0, 0, 0, 1, 0, 0, 0x40, 0, 0, 0, 0x40, 0];

fn with_header(header: &[u8], payload: &[u8]) -> Vec<u8> {
    [header, payload].concat()
}

fn hash_request() -> HashRequest {
    HashRequest {
        pieces_root: Sha256Hash([0x11; 32]),
        base_layer: 0,
        index: 4,
        length: 4,
        proof_layers: 3,
    }
}

fn hash_request_bytes() -> Vec<u8> {
    let mut b = vec![0x11; 32];
    b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 3]);
    b
}

#[test]
fn bep3_messages_exact_bytes() {
    check(Message::KeepAlive, &[0, 0, 0, 0]);
    check(Message::Choke, &[0, 0, 0, 1, 0]);
    check(Message::Unchoke, &[0, 0, 0, 1, 1]);
    check(Message::Interested, &[0, 0, 0, 1, 2]);
    check(Message::NotInterested, &[0, 0, 0, 1, 3]);
    check(
        Message::Have(PieceIndex(0x0102_0304)),
        &[0, 0, 0, 5, 4, 1, 2, 3, 4],
    );
    check(
        Message::Bitfield(Bytes::from_static(&[0xff, 0x80])),
        &[0, 0, 0, 3, 5, 0xff, 0x80],
    );
    check(
        Message::Request(request()),
        &with_header(&[0, 0, 0, 13, 6], &REQUEST_BYTES),
    );
    check(
        Message::Piece(Block {
            piece: PieceIndex(2),
            offset: 0x4000,
            data: Bytes::from_static(b"abc"),
        }),
        &[0, 0, 0, 12, 7, 0, 0, 0, 2, 0, 0, 0x40, 0, b'a', b'b', b'c'],
    );
    check(
        Message::Cancel(request()),
        &with_header(&[0, 0, 0, 13, 8], &REQUEST_BYTES),
    );
    check(Message::Port(6881), &[0, 0, 0, 3, 9, 0x1a, 0xe1]);
}

#[test]
fn bep6_messages_exact_bytes() {
    check(
        Message::Suggest(PieceIndex(5)),
        &[0, 0, 0, 5, 13, 0, 0, 0, 5],
    );
    check(Message::HaveAll, &[0, 0, 0, 1, 14]);
    check(Message::HaveNone, &[0, 0, 0, 1, 15]);
    check(
        Message::Reject(request()),
        &with_header(&[0, 0, 0, 13, 16], &REQUEST_BYTES),
    );
    check(
        Message::AllowedFast(PieceIndex(7)),
        &[0, 0, 0, 5, 17, 0, 0, 0, 7],
    );
}

#[test]
fn extended_and_unknown_exact_bytes() {
    check(
        Message::Extended {
            id: 0,
            payload: Bytes::from_static(b"de"),
        },
        &[0, 0, 0, 4, 20, 0, b'd', b'e'],
    );
    check(
        Message::Extended {
            id: 3,
            payload: Bytes::new(),
        },
        &[0, 0, 0, 2, 20, 3],
    );
    check(
        Message::Unknown {
            id: 0xc8,
            payload: Bytes::from_static(&[1, 2]),
        },
        &[0, 0, 0, 3, 0xc8, 1, 2],
    );
    check(
        Message::Unknown {
            id: 10,
            payload: Bytes::new(),
        },
        &[0, 0, 0, 1, 10],
    );
}

#[test]
fn bep52_messages_exact_bytes() {
    check(
        Message::HashRequest(hash_request()),
        &with_header(&[0, 0, 0, 49, 21], &hash_request_bytes()),
    );
    check(
        Message::HashReject(hash_request()),
        &with_header(&[0, 0, 0, 49, 23], &hash_request_bytes()),
    );
    let mut payload = hash_request_bytes();
    payload.extend_from_slice(&[0x22; 32]);
    payload.extend_from_slice(&[0x33; 32]);
    check(
        Message::Hashes(Hashes {
            request: hash_request(),
            hashes: vec![Sha256Hash([0x22; 32]), Sha256Hash([0x33; 32])],
        }),
        &with_header(&[0, 0, 0, 113, 22], &payload),
    );
}

#[test]
fn hash_request_rules() {
    assert!(hash_request().is_well_formed());
    let bad = |index, length| HashRequest {
        index,
        length,
        ..hash_request()
    };
    assert!(!bad(0, 1).is_well_formed());
    assert!(!bad(0, 6).is_well_formed());
    assert!(!bad(2, 4).is_well_formed());
    assert!(bad(0, 512).is_well_formed());
}

#[test]
fn piece_header_for_vectored_writes() {
    let block = Block {
        piece: PieceIndex(9),
        offset: 32768,
        data: Bytes::from(vec![5; 16384]),
    };
    let mut header = Vec::new();
    block.encode_header(&mut header);
    assert_eq!(header.len(), Block::HEADER_LEN);
    let whole = Message::Piece(block.clone()).to_bytes();
    assert_eq!(&whole[..Block::HEADER_LEN], &header[..]);
    assert_eq!(&whole[Block::HEADER_LEN..], &block.data[..]);
    assert_eq!(
        block.request(),
        BlockRequest {
            piece: PieceIndex(9),
            offset: 32768,
            length: 16384
        }
    );
}

#[test]
fn wrong_fixed_lengths_are_refused() {
    let wrong = |message, expected, actual| {
        Err(WireError::WrongLength {
            message,
            expected,
            actual,
        })
    };
    assert_eq!(
        decode_all(&[0, 0, 0, 6, 4, 0, 0, 0, 1, 0]),
        wrong(MessageId::Have, 5, 6)
    );
    assert_eq!(
        decode_all(&[0, 0, 0, 4, 4, 0, 0, 1]),
        wrong(MessageId::Have, 5, 4)
    );
    assert_eq!(
        decode_all(&[0, 0, 0, 2, 0, 0]),
        wrong(MessageId::Choke, 1, 2)
    );
    assert_eq!(
        decode_all(&[0, 0, 0, 2, 14, 0]),
        wrong(MessageId::HaveAll, 1, 2)
    );
    assert_eq!(
        decode_all(&[0, 0, 0, 2, 9, 0]),
        wrong(MessageId::Port, 3, 2)
    );
    assert_eq!(
        decode_all(&with_header(&[0, 0, 0, 12, 6], &REQUEST_BYTES[..11])),
        wrong(MessageId::Request, 13, 12)
    );
    assert_eq!(
        decode_all(&with_header(
            &[0, 0, 0, 48, 21],
            &hash_request_bytes()[..47]
        )),
        wrong(MessageId::HashRequest, 49, 48)
    );
    let err = decode_all(&[0, 0, 0, 6, 4, 0, 0, 0, 1, 0]).unwrap_err();
    assert_eq!(err.to_string(), "have message of 6 bytes, must be 5");
}

#[test]
fn short_and_malformed_messages_are_refused() {
    assert_eq!(
        decode_all(&[0, 0, 0, 8, 7, 0, 0, 0, 1, 0, 0, 0]),
        Err(WireError::TooShort {
            message: MessageId::Piece,
            min: 9,
            actual: 8
        })
    );
    assert_eq!(
        decode_all(&[0, 0, 0, 1, 20]),
        Err(WireError::TooShort {
            message: MessageId::Extended,
            min: 2,
            actual: 1
        })
    );
    let mut hashes = with_header(&[0, 0, 0, 80, 22], &hash_request_bytes());
    hashes.extend_from_slice(&[0; 31]);
    let err = decode_all(&hashes).unwrap_err();
    assert!(matches!(
        err,
        WireError::Malformed {
            message: MessageId::Hashes,
            ..
        }
    ));
    assert_eq!(
        err.to_string(),
        "hashes message: the hashes are not a whole number of 32-byte hashes"
    );
}

#[test]
fn length_limit_is_enforced_before_allocating() {
    let mut decoder = MessageDecoder::with_max_message_len(100);
    let mut at_limit = BytesMut::from(&[0, 0, 0, 100, 5][..]);
    at_limit.extend_from_slice(&[0; 99]);
    assert!(matches!(
        decoder.decode(&mut at_limit),
        Ok(Some(Message::Bitfield(_)))
    ));
    let mut over = BytesMut::from(&[0, 0, 0, 101, 5][..]);
    assert_eq!(
        decoder.decode(&mut over),
        Err(WireError::MessageTooLong {
            length: 101,
            max: 100
        })
    );

    let mut hostile = BytesMut::with_capacity(8);
    hostile.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 7]);
    let capacity = hostile.capacity();
    assert_eq!(
        MessageDecoder::new().decode(&mut hostile),
        Err(WireError::MessageTooLong {
            length: u32::MAX,
            max: MessageDecoder::DEFAULT_MAX_MESSAGE_LEN
        })
    );
    assert_eq!(hostile.capacity(), capacity);
    assert!(hostile.capacity() < 64);
}

#[test]
fn a_partial_message_is_left_in_place_without_copying() {
    // Two reads side by side in one buffer, as a connection's reader hands them out.
    let mut whole = BytesMut::from(&[0, 0, 0, 5, 4, 0, 0, 0, 7][..]);
    let second = whole.split_off(6);
    let mut buf = whole;
    let start = buf.as_ptr();
    assert_eq!(MessageDecoder::new().decode(&mut buf), Ok(None));
    assert_eq!((buf.len(), buf.as_ptr()), (6, start), "untouched");
    buf.unsplit(second);
    assert_eq!(buf.as_ptr(), start, "joined where it lay");
    assert!(matches!(
        MessageDecoder::new().decode(&mut buf),
        Ok(Some(Message::Have(PieceIndex(7))))
    ));
}

#[test]
fn limits_for_a_torrent() {
    assert_eq!(
        MessageDecoder::for_torrent(1000).max_message_len(),
        MessageDecoder::MIN_MAX_MESSAGE_LEN
    );
    let huge = MessageDecoder::for_torrent(4_000_000);
    assert_eq!(huge.max_message_len(), 1 + 500_000);
    assert_eq!(MessageDecoder::default(), MessageDecoder::new());
}

#[test]
fn piece_data_is_not_copied() {
    let block = Block {
        piece: PieceIndex(4),
        offset: 0,
        data: Bytes::from(vec![0xab; 16384]),
    };
    let mut buf = BytesMut::new();
    Message::KeepAlive.encode(&mut buf);
    Message::Piece(block.clone()).encode(&mut buf);
    let start = buf.as_ptr() as usize;
    let end = start + buf.len();
    let mut decoder = MessageDecoder::new();
    assert_eq!(decoder.decode(&mut buf), Ok(Some(Message::KeepAlive)));
    let Ok(Some(Message::Piece(got))) = decoder.decode(&mut buf) else {
        panic!("expected a piece");
    };
    let data_start = got.data.as_ptr() as usize;
    assert_eq!(data_start, start + 4 + Block::HEADER_LEN);
    assert_eq!(data_start + got.data.len(), end);
    assert_eq!(got, block);
}

#[test]
fn every_prefix_of_a_stream_decodes_without_error() {
    let mut stream = Vec::new();
    for m in [
        Message::Have(PieceIndex(1)),
        Message::Hashes(Hashes {
            request: hash_request(),
            hashes: vec![Sha256Hash([1; 32])],
        }),
        Message::Extended {
            id: 1,
            payload: Bytes::from_static(b"d1:xi1ee"),
        },
    ] {
        m.encode(&mut stream);
    }
    for cut in 0..stream.len() {
        let mut buf = BytesMut::from(&stream[..cut]);
        let mut decoder = MessageDecoder::new();
        while let Some(msg) = decoder.decode(&mut buf).unwrap() {
            assert_ne!(msg, Message::KeepAlive);
        }
    }
}

pub(crate) fn arb_bytes(max: usize) -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn arb_request() -> impl Strategy<Value = BlockRequest> {
    (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(piece, offset, length)| BlockRequest {
        piece: PieceIndex(piece),
        offset,
        length,
    })
}

fn arb_hash_request() -> impl Strategy<Value = HashRequest> {
    (any::<[u8; 32]>(), any::<[u32; 4]>()).prop_map(|(root, [base, index, length, proof])| {
        HashRequest {
            pieces_root: Sha256Hash(root),
            base_layer: base,
            index,
            length,
            proof_layers: proof,
        }
    })
}

fn arb_message() -> impl Strategy<Value = Message> {
    let piece = any::<u32>().prop_map(PieceIndex);
    prop_oneof![
        Just(Message::KeepAlive),
        Just(Message::Choke),
        Just(Message::Unchoke),
        Just(Message::Interested),
        Just(Message::NotInterested),
        Just(Message::HaveAll),
        Just(Message::HaveNone),
        piece.clone().prop_map(Message::Have),
        piece.clone().prop_map(Message::Suggest),
        piece.clone().prop_map(Message::AllowedFast),
        arb_bytes(64).prop_map(Message::Bitfield),
        arb_request().prop_map(Message::Request),
        arb_request().prop_map(Message::Cancel),
        arb_request().prop_map(Message::Reject),
        (piece, any::<u32>(), arb_bytes(300)).prop_map(|(piece, offset, data)| {
            Message::Piece(Block {
                piece,
                offset,
                data,
            })
        }),
        any::<u16>().prop_map(Message::Port),
        (any::<u8>(), arb_bytes(64)).prop_map(|(id, payload)| Message::Extended { id, payload }),
        arb_hash_request().prop_map(Message::HashRequest),
        arb_hash_request().prop_map(Message::HashReject),
        (
            arb_hash_request(),
            proptest::collection::vec(any::<[u8; 32]>().prop_map(Sha256Hash), 0..8)
        )
            .prop_map(|(request, hashes)| Message::Hashes(Hashes { request, hashes })),
        (
            any::<u8>().prop_filter("an unknown id", |id| MessageId::from_u8(*id).is_none()),
            arb_bytes(32)
        )
            .prop_map(|(id, payload)| Message::Unknown { id, payload }),
    ]
}

/// Feeds `stream` to a decoder in chunks of the given sizes (cycled) and collects what
/// comes out.
fn decode_in_chunks(
    stream: &[u8],
    chunk_sizes: &[usize],
    decoder: &mut MessageDecoder,
) -> Result<Vec<Message>, WireError> {
    let mut out = Vec::new();
    let mut buf = BytesMut::new();
    let mut rest = stream;
    let mut sizes = chunk_sizes.iter().cycle();
    while !rest.is_empty() {
        let size = sizes.next().copied().unwrap_or(1).clamp(1, rest.len());
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        buf.extend_from_slice(chunk);
        while let Some(msg) = decoder.decode(&mut buf)? {
            out.push(msg);
        }
    }
    Ok(out)
}

#[test]
fn extension_payloads_parse_from_decoded_messages_without_copying() {
    use super::extension::{MetadataMessage, MetadataPiece};
    let data = Bytes::from(vec![0x5a; 1000]);
    let metadata = MetadataMessage::Data {
        piece: MetadataPiece(0),
        total_size: 1000,
        data: data.clone(),
    };
    let mut buf = BytesMut::new();
    Message::Extended {
        id: 2,
        payload: metadata.to_bytes(),
    }
    .encode(&mut buf);
    let buf_range = buf.as_ptr_range();
    let Ok(Some(Message::Extended { id: 2, payload })) = MessageDecoder::new().decode(&mut buf)
    else {
        panic!("expected an extended message");
    };
    let parsed = MetadataMessage::parse(&payload).unwrap();
    let MetadataMessage::Data { data: got, .. } = &parsed else {
        panic!("expected metadata data, got {parsed:?}");
    };
    assert_eq!(got, &data);
    assert!(buf_range.contains(&got.as_ptr()));
    assert_eq!(got.as_ptr_range().end, buf_range.end);
}

proptest! {
    #[test]
    fn lengths_over_the_limit_are_refused_without_growing_the_buffer(
        max in 0u32..(1 << 24),
        excess in 1u32..=u32::MAX,
        tail in proptest::collection::vec(any::<u8>(), 0..8),
    ) {
        let length = max.saturating_add(excess).max(max + 1);
        let mut buf = BytesMut::with_capacity(16);
        buf.extend_from_slice(&length.to_be_bytes());
        buf.extend_from_slice(&tail);
        let capacity = buf.capacity();
        let result = MessageDecoder::with_max_message_len(max).decode(&mut buf);
        prop_assert_eq!(result, Err(WireError::MessageTooLong { length, max }));
        prop_assert_eq!(buf.capacity(), capacity);
        prop_assert_eq!(buf.len(), 4 + tail.len());
    }

    #[test]
    fn encode_then_decode_is_identity(msg in arb_message()) {
        let bytes = msg.to_bytes();
        prop_assert_eq!(bytes.len(), msg.encoded_len());
        prop_assert_eq!(decode_all(&bytes), Ok(Some(msg)));
    }

    #[test]
    fn any_split_of_the_stream_gives_the_same_messages(
        msgs in proptest::collection::vec(arb_message(), 0..20),
        chunk_sizes in proptest::collection::vec(1usize..80, 1..10),
    ) {
        let mut stream = Vec::new();
        for m in &msgs {
            m.encode(&mut stream);
        }
        let got = decode_in_chunks(&stream, &chunk_sizes, &mut MessageDecoder::new());
        prop_assert_eq!(got, Ok(msgs));
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..400),
        chunk_sizes in proptest::collection::vec(1usize..50, 1..5),
        max in 0u32..200,
    ) {
        let mut decoder = MessageDecoder::with_max_message_len(max);
        let _ = decode_in_chunks(&bytes, &chunk_sizes, &mut decoder);
    }

    #[test]
    fn plausible_frames_with_arbitrary_bodies_never_panic(
        id in any::<u8>(),
        body in proptest::collection::vec(any::<u8>(), 0..120),
    ) {
        let mut frame = ((body.len() + 1) as u32).to_be_bytes().to_vec();
        frame.push(id);
        frame.extend_from_slice(&body);
        match decode_all(&frame) {
            Ok(Some(msg)) => {
                // Whatever is accepted encodes back to the same bytes.
                prop_assert_eq!(&msg.to_bytes()[..], &frame[..]);
            }
            Ok(None) => prop_assert!(false, "a whole frame must decode"),
            Err(_) => {}
        }
    }
}
