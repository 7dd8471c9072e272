//! BEP52 merkle trees.
//!
//! A v2 torrent hashes each file on its own. The file is cut into 16 KiB blocks (the last one
//! may be short) and each block's SHA-256 is a leaf. Leaves are paired, and each pair hashed
//! (SHA-256 of left ‖ right), layer by layer, until one hash is left: the file's
//! `pieces root`. The leaf layer is padded to a power of two with all-zero hashes; a pad node
//! higher up is the hash of two pad children ([`pad_hash`]).
//!
//! Heights count up from the leaves: height 0 is the block layer, and the root of a tree of
//! `L` leaves is at height log2(`L`). The *piece layer*, which a .torrent carries under
//! `piece layers`, is at height log2(piece length / 16 KiB) ([`piece_height`]).
//!
//! - [`root_from_leaves`], [`root_from_layer`] and [`RootBuilder`] compute roots without
//!   building the tree.
//! - [`MerkleTree`] holds a whole tree (or its top above some layer), hands out its piece
//!   layer and answers BEP52 hash requests ([`HashRequest`]) with hashes and uncle hashes.
//! - [`prove`] and [`verify_hashes`] check a received answer.
//!
//! ```
//! use fxtor_proto::merkle::{self, HashRequest, MerkleTree};
//!
//! // A 100 KiB file: 7 blocks, padded to 8 leaves.
//! let data = vec![0xabu8; 100 * 1024];
//! let tree = MerkleTree::from_data(&data).unwrap();
//! assert_eq!(Some(tree.root()), merkle::root_from_data(&data));
//!
//! // A peer asks for the four leaves 4..8 with proof up to the root.
//! let request = HashRequest { base: 0, index: 4, count: 4, proof_layers: 2 };
//! let answer = tree.hashes(&request).unwrap();
//! assert_eq!(answer.len(), 5); // 4 leaves and 1 uncle
//! let leaves = merkle::verify_hashes(&tree.root(), tree.num_blocks(), &request, &answer).unwrap();
//! assert_eq!(leaves, &answer[..4]);
//! ```

use sha2::{Digest as _, Sha256};
use smallvec::SmallVec;
use thiserror::Error;

use crate::{Sha256Hash, BLOCK_SIZE};

/// The most blocks a file may have: a tree of 2^31 leaves (a 32 TiB file), so every count
/// and index of the tree fits in a `u32`.
pub const MAX_BLOCKS: u32 = 1 << 31;

/// Why a merkle computation, a hash request or a proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MerkleError {
    /// A tree needs at least one block.
    #[error("a merkle tree needs at least one block")]
    NoBlocks,
    /// More than [`MAX_BLOCKS`] blocks.
    #[error("{0} blocks is more than a merkle tree may have")]
    TooManyBlocks(u64),
    /// A layer above the root of the tree.
    #[error("layer {height} is above the root (height {root_height})")]
    HeightOutOfRange {
        /// The layer asked for.
        height: u32,
        /// The height of the tree's root.
        root_height: u32,
    },
    /// A layer with the wrong number of hashes for the file.
    #[error("layer {height} has {got} hashes, expected {expected}")]
    LayerLength {
        /// The layer's height.
        height: u32,
        /// The hashes the file's size calls for.
        expected: usize,
        /// The hashes given.
        got: usize,
    },
    /// A hash request asking for a number of hashes that is zero, not a power of two or more
    /// than [`HashRequest::MAX_COUNT`].
    #[error("hash request for {0} hashes (must be a power of two up to 8192)")]
    BadCount(u32),
    /// A hash request whose index is not a multiple of its count.
    #[error("hash request index {index} is not a multiple of its count {count}")]
    Misaligned {
        /// The request's index.
        index: u32,
        /// The request's count.
        count: u32,
    },
    /// A hash request whose base layer is not below the root.
    #[error("hash request base layer {base} is not below the root (height {root_height})")]
    BaseOutOfRange {
        /// The requested base layer.
        base: u32,
        /// The height of the file tree's root.
        root_height: u32,
    },
    /// A hash request for hashes past the end of their layer.
    #[error("hash request for hashes {index}..{index}+{count} of a layer of {layer_len}")]
    RangeOutOfLayer {
        /// The request's index.
        index: u32,
        /// The request's count.
        count: u32,
        /// The number of nodes in the base layer.
        layer_len: u32,
    },
    /// A hash request with proof layers reaching past the root.
    #[error("hash request for {proof_layers} proof layers above layer {base} of a tree of height {root_height}")]
    TooManyProofLayers {
        /// The requested base layer.
        base: u32,
        /// The requested proof layers.
        proof_layers: u32,
        /// The height of the file tree's root.
        root_height: u32,
    },
    /// A hash request for a layer below what the tree holds.
    #[error("layer {base} is not held (the lowest held layer is {lowest})")]
    LayerNotHeld {
        /// The requested base layer.
        base: u32,
        /// The lowest layer the tree holds.
        lowest: u32,
    },
    /// An answer with the wrong number of hashes for its request.
    #[error("{got} hashes in an answer that needs {expected}")]
    AnswerLength {
        /// Base hashes plus uncle hashes the request calls for.
        expected: usize,
        /// The hashes received.
        got: usize,
    },
    /// A proof that stops below the root, checked against the root alone.
    #[error("the proof reaches layer {height}, not the root (height {root_height})")]
    Unanchored {
        /// The layer the proof reaches.
        height: u32,
        /// The height of the root.
        root_height: u32,
    },
    /// Hashes that do not hash up to the expected node.
    #[error("the hashes do not match the merkle root")]
    Mismatch,
}

/// The leaf hash of one block: SHA-256 of its bytes (the last block of a file may be short).
pub fn block_hash(block: &[u8]) -> Sha256Hash {
    Sha256Hash::digest(block)
}

/// The leaf hashes of a v2 piece read from disk: one per 16 KiB block of its first
/// `data_len` bytes (the file's data; a short last block hashed as it is), then zero hashes
/// up to `count` leaves (the piece's subtree is padded with them past the file's end).
///
/// ```
/// use fxtor_proto::merkle::{block_hash, piece_leaves};
/// use fxtor_proto::{Sha256Hash, BLOCK_SIZE};
///
/// let data = vec![7u8; BLOCK_SIZE as usize + 10];
/// let leaves = piece_leaves(&data, data.len() as u32, 4);
/// assert_eq!(leaves[0], block_hash(&data[..BLOCK_SIZE as usize]));
/// assert_eq!(leaves[1], block_hash(&data[BLOCK_SIZE as usize..]));
/// assert_eq!(leaves[2..], [Sha256Hash::default(); 2]);
/// ```
pub fn piece_leaves(data: &[u8], data_len: u32, count: u32) -> Vec<Sha256Hash> {
    let data = &data[..data.len().min(data_len as usize)];
    let mut leaves: Vec<Sha256Hash> = data
        .chunks(crate::BLOCK_SIZE as usize)
        .take(count as usize)
        .map(block_hash)
        .collect();
    leaves.resize(count as usize, Sha256Hash::default());
    leaves
}

/// The parent of two nodes: SHA-256 of `left` ‖ `right`.
pub fn hash_pair(left: &Sha256Hash, right: &Sha256Hash) -> Sha256Hash {
    let mut hasher = Sha256::new();
    hasher.update(left.0);
    hasher.update(right.0);
    Sha256Hash(hasher.finalize().into())
}

/// The hash of a subtree of `height` layers above pad leaves: all zeros at height 0, and
/// the hash of two pad children of height `height - 1` above.
pub fn pad_hash(height: u32) -> Sha256Hash {
    raise_pad(Sha256Hash::default(), height)
}

/// The hash of a subtree of `levels` layers whose bottom nodes are all `pad`.
fn raise_pad(mut pad: Sha256Hash, levels: u32) -> Sha256Hash {
    for _ in 0..levels {
        pad = hash_pair(&pad, &pad);
    }
    pad
}

/// The number of 16 KiB blocks in `size` bytes (the last one may be short).
pub fn num_blocks(size: u64) -> u64 {
    size.div_ceil(u64::from(BLOCK_SIZE))
}

/// The height of the piece layer for a piece length: log2(`piece_length` / 16 KiB), or
/// `None` when the piece length is not a power of two of at least 16 KiB.
pub fn piece_height(piece_length: u32) -> Option<u32> {
    (piece_length.is_power_of_two() && piece_length >= BLOCK_SIZE)
        .then(|| (piece_length / BLOCK_SIZE).trailing_zeros())
}

/// The height of the root of a tree over `num_blocks` blocks: log2 of the block count
/// rounded up to a power of two.
pub fn root_height(num_blocks: u32) -> Result<u32, MerkleError> {
    Ok(num_leaves(num_blocks)?.trailing_zeros())
}

/// The number of leaves of a tree over `num_blocks` blocks: the block count rounded up to a
/// power of two.
fn num_leaves(num_blocks: u32) -> Result<u32, MerkleError> {
    if num_blocks == 0 {
        return Err(MerkleError::NoBlocks);
    }
    if num_blocks > MAX_BLOCKS {
        return Err(MerkleError::TooManyBlocks(num_blocks.into()));
    }
    // num_blocks <= 2^31, so rounding up to a power of two cannot overflow.
    Ok(num_blocks.next_power_of_two())
}

/// The root over leaf hashes, the leaf layer padded with zero hashes to a power of two.
/// One leaf is its own root; no leaves give the zero hash.
///
/// ```
/// use fxtor_proto::merkle;
/// let leaf = merkle::block_hash(&[0u8; 16384]);
/// let root = merkle::root_from_leaves(&[leaf; 4]);
/// assert_eq!(root.to_hex(), "60aae9c7b428f87e0713e88229e18f0adf12cd7b22a0dd8a92bb2485eb7af242");
/// ```
pub fn root_from_leaves(leaves: &[Sha256Hash]) -> Sha256Hash {
    root_from_layer(leaves, Sha256Hash::default())
}

/// The root over one layer of a tree, the layer padded to a power of two with `pad`, the
/// hash of a pad subtree as tall as the layer is high ([`pad_hash`]).
///
/// For a piece layer (the hashes of piece-sized subtrees) pass
/// `pad_hash(piece_height(piece_length))`. One hash is its own root; an empty layer gives
/// `pad`.
pub fn root_from_layer(layer: &[Sha256Hash], pad: Sha256Hash) -> Sha256Hash {
    let mut builder = RootBuilder::with_pad(pad);
    for hash in layer {
        builder.push(*hash);
    }
    builder.finish().unwrap_or(pad)
}

/// The `pieces root` of a file's bytes, or `None` for an empty file (which has none).
pub fn root_from_data(data: &[u8]) -> Option<Sha256Hash> {
    let mut builder = RootBuilder::new();
    for block in data.chunks(BLOCK_SIZE as usize) {
        builder.push_block(block);
    }
    builder.finish()
}

/// Computes a merkle root from hashes fed in order, holding only one hash per layer.
///
/// For hashing a file as it streams past: feed each block (or its hash) and take the root at
/// the end.
///
/// ```
/// use fxtor_proto::merkle::{self, RootBuilder};
/// let data = vec![7u8; 40_000];
/// let mut builder = RootBuilder::new();
/// for block in data.chunks(16384) {
///     builder.push_block(block);
/// }
/// assert_eq!(builder.finish(), merkle::root_from_data(&data));
/// ```
#[derive(Debug, Clone)]
pub struct RootBuilder {
    /// Roots of complete subtrees not yet paired, tallest first, with their heights above the
    /// base layer. Heights strictly decrease, like the bits of the count.
    stack: SmallVec<[(u32, Sha256Hash); 32]>,
    /// The hash standing for a missing node of the base layer.
    pad: Sha256Hash,
    /// Hashes pushed so far.
    count: u64,
}

impl Default for RootBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl RootBuilder {
    /// A builder over leaves (block hashes), padded with zero hashes.
    pub fn new() -> Self {
        Self::with_pad(Sha256Hash::default())
    }

    /// A builder over a layer whose missing nodes are `pad`.
    pub fn with_pad(pad: Sha256Hash) -> Self {
        Self {
            stack: SmallVec::new(),
            pad,
            count: 0,
        }
    }

    /// Adds the next hash of the base layer.
    pub fn push(&mut self, hash: Sha256Hash) {
        let mut node = (0u32, hash);
        while let Some(&(height, left)) = self.stack.last() {
            if height != node.0 {
                break;
            }
            self.stack.pop();
            node = (height + 1, hash_pair(&left, &node.1));
        }
        self.stack.push(node);
        self.count += 1;
    }

    /// Hashes a block and adds it as the next leaf.
    pub fn push_block(&mut self, block: &[u8]) {
        self.push(block_hash(block));
    }

    /// The number of hashes pushed.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// Whether nothing has been pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The root, padding the base layer to a power of two; `None` if nothing was pushed.
    pub fn finish(mut self) -> Option<Sha256Hash> {
        let (mut height, mut node) = self.stack.pop()?;
        // The tree's height: log2 of the count rounded up to a power of two.
        let target = u64::BITS - (self.count - 1).leading_zeros();
        let mut pad = raise_pad(self.pad, height);
        while height < target {
            node = match self.stack.last() {
                Some(&(left_height, left)) if left_height == height => {
                    self.stack.pop();
                    hash_pair(&left, &node)
                }
                _ => hash_pair(&node, &pad),
            };
            pad = hash_pair(&pad, &pad);
            height += 1;
        }
        Some(node)
    }
}

/// Which hashes of a file's tree a BEP52 `hash request` asks for: `count` hashes of the
/// layer `base` layers above the leaves, starting at `index`, and the uncle hashes that prove
/// them up to `proof_layers` layers higher.
///
/// The answer is the `count` base hashes followed by one uncle per proof layer, lowest first,
/// except the first log2(`count`) − 1 proof layers, which the base hashes themselves fill in
/// ([`num_uncles`](Self::num_uncles)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashRequest {
    /// The layer of the first hashes: 0 for leaves, [`piece_height`] for the piece layer.
    pub base: u32,
    /// The first requested hash in the base layer; a multiple of `count`.
    pub index: u32,
    /// How many base-layer hashes: a power of two.
    pub count: u32,
    /// How many layers above the base the proof reaches.
    pub proof_layers: u32,
}

impl HashRequest {
    /// The largest `count` accepted (libtorrent's limit: a run of leaves covering a 128 MiB
    /// piece).
    pub const MAX_COUNT: u32 = 8192;

    /// Checks the request's shape and that it fits the tree of a file of `num_blocks`
    /// blocks.
    ///
    /// BEP52 asks for at least two hashes; one is accepted too, since libtorrent asks for one
    /// when the last run of a file's piece layer is a single piece.
    pub fn check(&self, num_blocks: u32) -> Result<(), MerkleError> {
        if !self.count.is_power_of_two() || self.count > Self::MAX_COUNT {
            return Err(MerkleError::BadCount(self.count));
        }
        if self.index % self.count != 0 {
            return Err(MerkleError::Misaligned {
                index: self.index,
                count: self.count,
            });
        }
        let leaves = num_leaves(num_blocks)?;
        let root_height = leaves.trailing_zeros();
        if self.base >= root_height {
            return Err(MerkleError::BaseOutOfRange {
                base: self.base,
                root_height,
            });
        }
        let layer_len = leaves >> self.base;
        if u64::from(self.index) + u64::from(self.count) > u64::from(layer_len) {
            return Err(MerkleError::RangeOutOfLayer {
                index: self.index,
                count: self.count,
                layer_len,
            });
        }
        if self.proof_layers >= root_height - self.base {
            return Err(MerkleError::TooManyProofLayers {
                base: self.base,
                proof_layers: self.proof_layers,
                root_height,
            });
        }
        Ok(())
    }

    /// The number of uncle hashes in the answer: one per proof layer, less the
    /// log2(`count`) − 1 layers the base hashes fill in.
    pub fn num_uncles(&self) -> u32 {
        self.proof_layers
            .saturating_add(1)
            .saturating_sub(self.count_log2())
    }

    /// The number of hashes in the answer: `count` plus [`num_uncles`](Self::num_uncles).
    pub fn num_hashes(&self) -> usize {
        self.count as usize + self.num_uncles() as usize
    }

    /// log2 of `count` (which [`check`](Self::check) requires to be a power of two).
    fn count_log2(&self) -> u32 {
        self.count.max(1).ilog2()
    }
}

/// The node a checked answer to a hash request proves: the hash at `height`, `index` that the
/// base hashes and uncles compute. Compare it with a node already trusted (the root, or a
/// verified node of a partly known tree).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProvenNode {
    /// The node's layer, counted from the leaves.
    pub height: u32,
    /// The node's index in its layer.
    pub index: u32,
    /// The hash the answer computes for it.
    pub hash: Sha256Hash,
}

/// Computes the node an answer to `request` proves, for a file of `num_blocks` blocks.
///
/// `hashes` is the answer as received: `count` base hashes, then the uncles lowest first.
pub fn prove(
    num_blocks: u32,
    request: &HashRequest,
    hashes: &[Sha256Hash],
) -> Result<ProvenNode, MerkleError> {
    request.check(num_blocks)?;
    if hashes.len() != request.num_hashes() {
        return Err(MerkleError::AnswerLength {
            expected: request.num_hashes(),
            got: hashes.len(),
        });
    }
    let (base, uncles) = hashes.split_at(request.count as usize);
    // `count` is a power of two, so no padding is involved.
    let mut hash = root_from_leaves(base);
    let mut height = request.base + request.count_log2();
    let mut index = request.index >> request.count_log2();
    for uncle in uncles {
        hash = if index % 2 == 0 {
            hash_pair(&hash, uncle)
        } else {
            hash_pair(uncle, &hash)
        };
        index /= 2;
        height += 1;
    }
    Ok(ProvenNode {
        height,
        index,
        hash,
    })
}

/// Checks an answer to `request` against a file's `pieces root`, for a file of `num_blocks`
/// blocks, and returns its base-layer hashes (pads past the end of the file included).
///
/// The proof must reach the root; for a proof that stops below it, use [`prove`] and compare
/// the result with a node known some other way.
pub fn verify_hashes<'a>(
    root: &Sha256Hash,
    num_blocks: u32,
    request: &HashRequest,
    hashes: &'a [Sha256Hash],
) -> Result<&'a [Sha256Hash], MerkleError> {
    let proven = prove(num_blocks, request, hashes)?;
    let root_height = root_height(num_blocks)?;
    if proven.height != root_height {
        return Err(MerkleError::Unanchored {
            height: proven.height,
            root_height,
        });
    }
    if proven.hash != *root {
        return Err(MerkleError::Mismatch);
    }
    Ok(&hashes[..request.count as usize])
}

/// A file's merkle tree, from some layer (the leaves, or the piece layer) up to the root,
/// kept as one flat array: the root first, then each layer left to right, padding included.
///
/// ```
/// use fxtor_proto::merkle::{self, MerkleTree};
/// // A 1 MiB file with 64 KiB pieces (piece layer at height 2).
/// let data = vec![1u8; 1 << 20];
/// let tree = MerkleTree::from_data(&data).unwrap();
/// let layer = tree.piece_layer(2).unwrap();
/// assert_eq!(layer.len(), 16);
/// // The piece layer alone gives the same root, and a tree that answers for pieces.
/// let top = MerkleTree::from_layer(layer, 2, tree.num_blocks()).unwrap();
/// assert_eq!(top.root(), tree.root());
/// assert_eq!(merkle::root_from_layer(layer, merkle::pad_hash(2)), tree.root());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct MerkleTree {
    /// Blocks in the file (leaves before padding).
    num_blocks: u32,
    /// Height of the root.
    root_height: u32,
    /// Height of the lowest layer held.
    lowest: u32,
    /// The nodes: the layer at depth `d` below the root starts at `2^d - 1`.
    nodes: Vec<Sha256Hash>,
}

impl std::fmt::Debug for MerkleTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MerkleTree")
            .field("root", &self.root())
            .field("num_blocks", &self.num_blocks)
            .field("root_height", &self.root_height)
            .field("lowest", &self.lowest)
            .finish()
    }
}

impl MerkleTree {
    /// Builds the whole tree of a file from its leaf (block) hashes.
    pub fn from_leaves(leaves: &[Sha256Hash]) -> Result<Self, MerkleError> {
        let num_blocks = u32::try_from(leaves.len())
            .map_err(|_| MerkleError::TooManyBlocks(leaves.len() as u64))?;
        Self::from_layer(leaves, 0, num_blocks)
    }

    /// Builds the whole tree of a file from its bytes.
    pub fn from_data(data: &[u8]) -> Result<Self, MerkleError> {
        let leaves: Vec<Sha256Hash> = data.chunks(BLOCK_SIZE as usize).map(block_hash).collect();
        Self::from_leaves(&leaves)
    }

    /// Builds the tree above a layer of a file of `num_blocks` blocks: `layer` holds the
    /// hashes at `height` that cover the file (pad nodes past its end left out, as in a
    /// .torrent's `piece layers`). A layer at the root's height is the root alone.
    pub fn from_layer(
        layer: &[Sha256Hash],
        height: u32,
        num_blocks: u32,
    ) -> Result<Self, MerkleError> {
        let root_height = root_height(num_blocks)?;
        if height > root_height {
            return Err(MerkleError::HeightOutOfRange {
                height,
                root_height,
            });
        }
        let expected = num_blocks.div_ceil(1 << height) as usize;
        if layer.len() != expected {
            return Err(MerkleError::LayerLength {
                height,
                expected,
                got: layer.len(),
            });
        }
        // The layer has at most 2^31 nodes (num_blocks <= MAX_BLOCKS), and the tree above it
        // fewer than twice as many as the layer's padded width.
        let width = 1usize << (root_height - height);
        let mut nodes = vec![Sha256Hash::default(); 2 * width - 1];
        let mut start = width - 1;
        nodes[start..start + layer.len()].copy_from_slice(layer);
        let mut pad = pad_hash(height);
        nodes[start + layer.len()..].fill(pad);
        let mut real = layer.len();
        let mut len = width;
        while len > 1 {
            let parent_start = (start - 1) / 2;
            let parent_real = real.div_ceil(2);
            for i in 0..parent_real {
                nodes[parent_start + i] =
                    hash_pair(&nodes[start + 2 * i], &nodes[start + 2 * i + 1]);
            }
            pad = hash_pair(&pad, &pad);
            nodes[parent_start + parent_real..start].fill(pad);
            start = parent_start;
            real = parent_real;
            len /= 2;
        }
        Ok(Self {
            num_blocks,
            root_height,
            lowest: height,
            nodes,
        })
    }

    /// The root: the file's `pieces root`.
    pub fn root(&self) -> Sha256Hash {
        // A tree always holds at least its root (`from_layer` makes 2 * width - 1 >= 1 nodes).
        self.nodes[0]
    }

    /// The number of blocks of the file.
    pub fn num_blocks(&self) -> u32 {
        self.num_blocks
    }

    /// The height of the root above the leaves.
    pub fn root_height(&self) -> u32 {
        self.root_height
    }

    /// The lowest layer held (0 when the tree was built from leaves).
    pub fn lowest_layer(&self) -> u32 {
        self.lowest
    }

    /// All nodes of the layer at `height`, padding included, if the tree holds it.
    pub fn layer(&self, height: u32) -> Option<&[Sha256Hash]> {
        if height < self.lowest || height > self.root_height {
            return None;
        }
        let width = 1usize << (self.root_height - height);
        self.nodes.get(width - 1..2 * width - 1)
    }

    /// The node at `height`, `index`, if the tree holds it.
    pub fn node(&self, height: u32, index: u32) -> Option<Sha256Hash> {
        self.layer(height)?.get(index as usize).copied()
    }

    /// The piece layer as a .torrent carries it: the hashes at `piece_height` that cover the
    /// file, pad nodes past its end left out. `None` for a file of at most one piece (its root
    /// is its only piece hash) or when the tree does not hold that layer.
    pub fn piece_layer(&self, piece_height: u32) -> Option<&[Sha256Hash]> {
        if piece_height >= self.root_height {
            return None;
        }
        let covered = self.num_blocks.div_ceil(1 << piece_height) as usize;
        self.layer(piece_height)?.get(..covered)
    }

    /// Answers a hash request: the base hashes, then the uncles lowest first.
    pub fn hashes(&self, request: &HashRequest) -> Result<Vec<Sha256Hash>, MerkleError> {
        request.check(self.num_blocks)?;
        let base_layer = self.layer(request.base).ok_or(MerkleError::LayerNotHeld {
            base: request.base,
            lowest: self.lowest,
        })?;
        let start = request.index as usize;
        let mut out = Vec::with_capacity(request.num_hashes());
        // `check` proved index + count <= the layer's width.
        out.extend_from_slice(&base_layer[start..start + request.count as usize]);
        // The uncles are the siblings of the subtree root's ancestors, up to proof_layers
        // above the base; `check` keeps them all below the root.
        let subtree_height = request.base + request.count_log2();
        let mut index = request.index >> request.count_log2();
        for height in subtree_height..subtree_height + request.num_uncles() {
            let sibling = self
                .node(height, index ^ 1)
                .ok_or(MerkleError::HeightOutOfRange {
                    height,
                    root_height: self.root_height,
                })?;
            out.push(sibling);
            index /= 2;
        }
        Ok(out)
    }

    /// The flat array of nodes, root first.
    pub fn nodes(&self) -> &[Sha256Hash] {
        &self.nodes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn leaves(n: usize) -> Vec<Sha256Hash> {
        (0..n)
            .map(|i| block_hash(&(i as u64).to_le_bytes()))
            .collect()
    }

    /// The textbook definition: pad to a power of two, then pair up layer by layer.
    fn naive_root(layer: &[Sha256Hash], pad: Sha256Hash) -> Sha256Hash {
        let mut layer = layer.to_vec();
        layer.resize(layer.len().next_power_of_two(), pad);
        while layer.len() > 1 {
            layer = layer
                .chunks(2)
                .map(|pair| hash_pair(&pair[0], &pair[1]))
                .collect();
        }
        layer[0]
    }

    #[test]
    fn known_answer_64_kib_of_zeros() {
        let root = root_from_data(&[0u8; 65536]).unwrap();
        assert_eq!(
            root.to_hex(),
            "60aae9c7b428f87e0713e88229e18f0adf12cd7b22a0dd8a92bb2485eb7af242"
        );
        assert_eq!(MerkleTree::from_data(&[0u8; 65536]).unwrap().root(), root);
    }

    #[test]
    fn known_answer_1_mib_of_zeros() {
        let data = vec![0u8; 1 << 20];
        let root = root_from_data(&data).unwrap();
        assert_eq!(
            root.to_hex(),
            "515ea9181744b817744ded9d2e8e9dc6a8450c0b0c52e24b5077f302ffbd9008"
        );
        let tree = MerkleTree::from_data(&data).unwrap();
        assert_eq!(tree.root(), root);
        assert_eq!(tree.root_height(), 6);
    }

    #[test]
    fn pad_hashes() {
        assert_eq!(pad_hash(0), Sha256Hash::default());
        assert_eq!(pad_hash(1), hash_pair(&pad_hash(0), &pad_hash(0)));
        assert_eq!(
            pad_hash(3),
            naive_root(&[Sha256Hash::default(); 8], Sha256Hash::default())
        );
    }

    #[test]
    fn small_roots() {
        assert_eq!(root_from_leaves(&[]), Sha256Hash::default());
        let l = leaves(3);
        assert_eq!(root_from_leaves(&l[..1]), l[0]);
        assert_eq!(root_from_leaves(&l[..2]), hash_pair(&l[0], &l[1]));
        assert_eq!(
            root_from_leaves(&l),
            hash_pair(
                &hash_pair(&l[0], &l[1]),
                &hash_pair(&l[2], &Sha256Hash::default())
            )
        );
        assert_eq!(root_from_data(&[]), None);
        // A short last block is hashed as it is.
        assert_eq!(root_from_data(b"abc"), Some(Sha256Hash::digest(b"abc")));
    }

    #[test]
    fn piece_heights() {
        assert_eq!(piece_height(16384), Some(0));
        assert_eq!(piece_height(65536), Some(2));
        assert_eq!(piece_height(1 << 31), Some(17));
        assert_eq!(piece_height(8192), None);
        assert_eq!(piece_height(3 * 16384), None);
        assert_eq!(piece_height(0), None);
    }

    #[test]
    fn piece_layer_of_a_small_file_is_absent() {
        // 3 blocks with 64 KiB (4-block) pieces: one piece, no layer.
        let tree = MerkleTree::from_leaves(&leaves(3)).unwrap();
        assert_eq!(tree.piece_layer(2), None);
        assert_eq!(tree.piece_layer(1).map(<[_]>::len), Some(2));
        // The root as a "layer" at the root's height.
        let top = MerkleTree::from_layer(&[tree.root()], 2, 3).unwrap();
        assert_eq!(top.root(), tree.root());
        assert!(matches!(
            MerkleTree::from_layer(&[tree.root()], 3, 3),
            Err(MerkleError::HeightOutOfRange { .. })
        ));
    }

    #[test]
    fn tree_from_layer_checks_length() {
        assert_eq!(
            MerkleTree::from_layer(&leaves(3), 1, 8),
            Err(MerkleError::LayerLength {
                height: 1,
                expected: 4,
                got: 3
            })
        );
        assert_eq!(MerkleTree::from_leaves(&[]), Err(MerkleError::NoBlocks));
        assert_eq!(
            root_height(MAX_BLOCKS + 1),
            Err(MerkleError::TooManyBlocks(u64::from(MAX_BLOCKS) + 1))
        );
        assert_eq!(root_height(MAX_BLOCKS), Ok(31));
    }

    #[test]
    fn hash_request_shape() {
        let ok = HashRequest {
            base: 0,
            index: 4,
            count: 4,
            proof_layers: 2,
        };
        assert_eq!(ok.check(7), Ok(()));
        assert_eq!(ok.num_uncles(), 1);
        let bad = |r: HashRequest| r.check(7).unwrap_err();
        assert_eq!(
            bad(HashRequest { count: 3, ..ok }),
            MerkleError::BadCount(3)
        );
        assert_eq!(
            bad(HashRequest { count: 0, ..ok }),
            MerkleError::BadCount(0)
        );
        assert_eq!(
            bad(HashRequest { count: 16384, ..ok }),
            MerkleError::BadCount(16384)
        );
        assert!(matches!(
            bad(HashRequest { index: 2, ..ok }),
            MerkleError::Misaligned { .. }
        ));
        assert!(matches!(
            bad(HashRequest { index: 8, ..ok }),
            MerkleError::RangeOutOfLayer { .. }
        ));
        assert!(matches!(
            bad(HashRequest { base: 3, ..ok }),
            MerkleError::BaseOutOfRange { .. }
        ));
        assert!(matches!(
            bad(HashRequest {
                proof_layers: 3,
                ..ok
            }),
            MerkleError::TooManyProofLayers { .. }
        ));
        // Index near u32::MAX: no overflow.
        assert!(HashRequest {
            base: 0,
            index: 1 << 31,
            count: 1 << 13,
            proof_layers: 0
        }
        .check(MAX_BLOCKS)
        .is_err());
        assert!(HashRequest {
            base: 0,
            index: 0,
            count: 2,
            proof_layers: 0
        }
        .check(1)
        .is_err());
    }

    #[test]
    fn answer_round_trip_and_tampering() {
        let tree = MerkleTree::from_leaves(&leaves(13)).unwrap();
        let root = tree.root();
        let request = HashRequest {
            base: 0,
            index: 8,
            count: 8,
            proof_layers: 3,
        };
        let answer = tree.hashes(&request).unwrap();
        assert_eq!(answer.len(), 9);
        // The base hashes past the file are zero pads.
        assert_eq!(answer[5..8], [Sha256Hash::default(); 3]);
        assert_eq!(
            verify_hashes(&root, 13, &request, &answer),
            Ok(&answer[..8])
        );
        for i in 0..answer.len() {
            let mut bad = answer.clone();
            bad[i].0[0] ^= 1;
            assert_eq!(
                verify_hashes(&root, 13, &request, &bad),
                Err(MerkleError::Mismatch)
            );
        }
        assert!(matches!(
            verify_hashes(&root, 13, &request, &answer[..8]),
            Err(MerkleError::AnswerLength { .. })
        ));
        // A shorter proof is checked against an inner node.
        let short = HashRequest {
            proof_layers: 1,
            ..request
        };
        let answer = tree.hashes(&short).unwrap();
        assert_eq!(answer.len(), 8);
        let proven = prove(13, &short, &answer).unwrap();
        assert_eq!((proven.height, proven.index), (3, 1));
        assert_eq!(tree.node(3, 1), Some(proven.hash));
        assert!(matches!(
            verify_hashes(&root, 13, &short, &answer),
            Err(MerkleError::Unanchored { .. })
        ));
    }

    #[test]
    fn answers_from_a_piece_layer_tree() {
        let full = MerkleTree::from_leaves(&leaves(50)).unwrap();
        // 4-block pieces: 13 pieces.
        let layer = full.piece_layer(2).unwrap();
        assert_eq!(layer.len(), 13);
        let top = MerkleTree::from_layer(layer, 2, 50).unwrap();
        assert_eq!(top.root(), full.root());
        let request = HashRequest {
            base: 2,
            index: 0,
            count: 16,
            proof_layers: 3,
        };
        assert_eq!(top.hashes(&request), full.hashes(&request));
        assert!(verify_hashes(&full.root(), 50, &request, &top.hashes(&request).unwrap()).is_ok());
        assert!(matches!(
            top.hashes(&HashRequest {
                base: 0,
                index: 0,
                count: 4,
                proof_layers: 0
            }),
            Err(MerkleError::LayerNotHeld { base: 0, lowest: 2 })
        ));
    }

    proptest! {
        #[test]
        fn roots_agree(n in 1usize..300, pad_height in 0u32..4) {
            let l = leaves(n);
            let pad = pad_hash(pad_height);
            prop_assert_eq!(root_from_layer(&l, pad), naive_root(&l, pad));
            prop_assert_eq!(MerkleTree::from_leaves(&l).unwrap().root(), naive_root(&l, Sha256Hash::default()));
        }

        #[test]
        fn piece_layer_hashes_up_to_the_root(n in 1u32..600, height in 0u32..5) {
            let tree = MerkleTree::from_leaves(&leaves(n as usize)).unwrap();
            match tree.piece_layer(height) {
                Some(layer) => {
                    prop_assert_eq!(layer.len() as u32, n.div_ceil(1 << height));
                    prop_assert!(layer.len() > 1);
                    prop_assert_eq!(root_from_layer(layer, pad_hash(height)), tree.root());
                    let top = MerkleTree::from_layer(layer, height, n).unwrap();
                    for h in height..=tree.root_height() {
                        prop_assert_eq!(top.layer(h), tree.layer(h));
                    }
                    prop_assert_eq!(top.layer(height.wrapping_sub(1)), None);
                }
                None => prop_assert!(n <= 1 << height),
            }
        }

        #[test]
        fn every_valid_request_verifies(
            n in 2u32..300,
            seeds in any::<[u32; 4]>(),
        ) {
            let tree = MerkleTree::from_leaves(&leaves(n as usize)).unwrap();
            let top = tree.root_height();
            let base = seeds[0] % top;
            let count = 1 << (seeds[1] % (top - base + 1));
            let index = seeds[2] % (1 << (top - base)) / count * count;
            let proof_layers = seeds[3] % (top - base);
            let request = HashRequest { base, index, count, proof_layers };
            prop_assert_eq!(request.check(n), Ok(()));
            let answer = tree.hashes(&request).unwrap();
            prop_assert_eq!(answer.len(), request.num_hashes());
            let proven = prove(n, &request, &answer).unwrap();
            prop_assert_eq!(tree.node(proven.height, proven.index), Some(proven.hash));
            let reaches_root = proven.height == top;
            prop_assert_eq!(verify_hashes(&tree.root(), n, &request, &answer).is_ok(), reaches_root);
            // One proof layer more or less changes the answer's length.
            let longer = HashRequest { proof_layers: proof_layers + 1, ..request };
            if longer.num_hashes() != request.num_hashes() {
                prop_assert!(prove(n, &longer, &answer).is_err());
            }
        }

        #[test]
        fn prove_never_panics(
            n in any::<u32>(),
            base in any::<u32>(),
            index in any::<u32>(),
            count in any::<u32>(),
            proof_layers in any::<u32>(),
            len in 0usize..40,
        ) {
            let request = HashRequest { base, index, count, proof_layers };
            let hashes = vec![Sha256Hash::default(); len];
            let _ = prove(n, &request, &hashes);
            let _ = verify_hashes(&Sha256Hash::default(), n, &request, &hashes);
            let _ = request.num_hashes();
            let _ = HashRequest { proof_layers: u32::MAX, ..request }.num_hashes();
        }
    }
}
