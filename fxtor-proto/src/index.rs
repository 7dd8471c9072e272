//! Index newtypes, so a piece number is never confused with a file number or a byte count.

use std::fmt;

macro_rules! index_newtype {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub u32);

        impl $name {
            /// The index as a `usize`, for indexing slices.
            pub fn get(self) -> usize {
                self.0 as usize
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl From<u32> for $name {
            fn from(v: u32) -> Self {
                Self(v)
            }
        }
    };
}

index_newtype!(
    /// The index of a piece in a torrent.
    PieceIndex
);
index_newtype!(
    /// The index of a file in a torrent's file list (pad files included, in the torrent's order).
    FileIndex
);

/// The size of a block: the unit of a request on the wire (16 KiB) and the leaf of a BEP52
/// merkle tree.
pub const BLOCK_SIZE: u32 = 16 * 1024;
