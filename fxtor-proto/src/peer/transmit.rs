//! The bytes waiting to be written to the peer, in order, with piece data kept in the
//! buffers it was read into.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use crate::wire::{Block, Message};

/// The outgoing byte stream as a list of chunks: control messages are encoded into one
/// growing buffer, and a `piece` message's data is queued as its own chunk after the
/// header, so it is never copied.
#[derive(Debug, Default)]
pub(super) struct TransmitQueue {
    /// Chunks ready to go, before `open`.
    ready: VecDeque<Bytes>,
    /// Encoded messages not yet cut into a chunk; they follow `ready`.
    open: BytesMut,
    /// Bytes in `ready` and `open`.
    len: usize,
}

impl TransmitQueue {
    /// Appends an encoded message; returns its length.
    pub fn push_message(&mut self, message: &Message) -> usize {
        let before = self.open.len();
        message.encode(&mut self.open);
        let len = self.open.len() - before;
        self.len += len;
        len
    }

    /// Appends raw bytes (the handshake).
    pub fn push_bytes(&mut self, encode: impl FnOnce(&mut BytesMut)) -> usize {
        let before = self.open.len();
        encode(&mut self.open);
        let len = self.open.len() - before;
        self.len += len;
        len
    }

    /// Appends a `piece` message: its header into the open buffer, its data as a chunk of
    /// its own.
    pub fn push_block(&mut self, block: &Block) {
        block.encode_header(&mut self.open);
        self.ready.push_back(self.open.split().freeze());
        self.len += Block::HEADER_LEN + block.data.len();
        if !block.data.is_empty() {
            self.ready.push_back(block.data.clone());
        }
    }

    /// The next chunk to write.
    pub fn pop(&mut self) -> Option<Bytes> {
        let chunk = match self.ready.pop_front() {
            Some(chunk) => chunk,
            None if !self.open.is_empty() => self.open.split().freeze(),
            None => return None,
        };
        self.len -= chunk.len();
        Some(chunk)
    }

    /// How many bytes are waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Drops everything waiting.
    pub fn clear(&mut self) {
        self.ready.clear();
        self.open.clear();
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PieceIndex;

    #[test]
    fn keeps_order_and_shares_block_data() {
        let mut queue = TransmitQueue::default();
        queue.push_message(&Message::Unchoke);
        let data = Bytes::from(vec![9u8; 100]);
        let block = Block {
            piece: PieceIndex(1),
            offset: 0,
            data: data.clone(),
        };
        queue.push_block(&block);
        queue.push_message(&Message::Have(PieceIndex(2)));
        assert_eq!(queue.len(), 5 + 13 + 100 + 9);

        let mut stream = Vec::new();
        let mut chunks = Vec::new();
        while let Some(chunk) = queue.pop() {
            stream.extend_from_slice(&chunk);
            chunks.push(chunk);
        }
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[1].as_ptr(), data.as_ptr(), "the data is not copied");
        let mut expected = Vec::new();
        Message::Unchoke.encode(&mut expected);
        Message::Piece(block).encode(&mut expected);
        Message::Have(PieceIndex(2)).encode(&mut expected);
        assert_eq!(stream, expected);
        assert_eq!(queue.len(), 0);
    }
}
