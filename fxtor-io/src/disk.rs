//! Running the core's disk jobs: verification, reads and writes of a torrent's files.
//!
//! [`run_job`] is blocking (file I/O and hashing): an adapter calls it on its blocking pool
//! and feeds the [`DiskCompletion`] back to the session.

use std::io;

use fxtor_proto::session::{DiskCompletion, DiskJob, DiskJobKind, DiskResult};
use fxtor_proto::verify::PieceCheck;
use fxtor_proto::PieceIndex;

use crate::storage::{Storage, StorageError};

/// Runs one disk job against a torrent's storage and says how it went.
///
/// - `WritePiece`: the piece is verified first and written only if it passes, so a corrupt
///   piece never reaches the disk.
/// - `CheckPiece`: the piece is read and verified; a missing or short file means the piece
///   is not there (it fails), not that the job failed.
/// - `Read`: the bytes, for an upload.
/// - `CreateEmptyFiles`: the torrent's zero-length files.
///
/// Any other I/O error answers [`DiskResult::Failed`] with the file and the reason.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// use bytes::Bytes;
/// use fxtor_proto::create::TorrentBuilder;
/// use fxtor_proto::session::{DiskJob, DiskJobId, DiskJobKind, DiskResult, TorrentId};
/// use fxtor_proto::verify::PieceCheck;
/// use fxtor_proto::{PieceIndex, TorrentInfo};
/// use fxtor_io::{disk, Storage};
///
/// let mut hasher = TorrentBuilder::single_file("hello.txt", 5).into_hasher().unwrap();
/// hasher.update(b"hello").unwrap();
/// let info = TorrentInfo::from_bytes(&hasher.finish().unwrap().bytes).unwrap();
/// let storage = Storage::new(dir.path(), &info);
///
/// let check = PieceCheck::for_piece(&info, PieceIndex(0)).unwrap();
/// let job = |blocks: &[&'static [u8]]| DiskJob {
///     id: DiskJobId(1),
///     torrent: TorrentId(0),
///     kind: DiskJobKind::WritePiece {
///         piece: PieceIndex(0),
///         blocks: blocks.iter().map(|b| Bytes::from_static(b)).collect(),
///         check,
///     },
/// };
/// // A corrupt piece fails its check and is not written.
/// let done = disk::run_job(&storage, job(&[b"jello"]));
/// assert_eq!(done.result, DiskResult::PieceWritten { piece: PieceIndex(0), passed: false });
/// assert!(!dir.path().join("hello.txt").exists());
/// // The right one is.
/// let done = disk::run_job(&storage, job(&[b"he", b"llo"]));
/// assert_eq!(done.result, DiskResult::PieceWritten { piece: PieceIndex(0), passed: true });
/// assert_eq!(std::fs::read(dir.path().join("hello.txt")).unwrap(), b"hello");
/// ```
pub fn run_job(storage: &Storage, job: DiskJob) -> DiskCompletion {
    let result = match job.kind {
        DiskJobKind::WritePiece {
            piece,
            blocks,
            check,
        } => {
            if check.verify(blocks.iter().map(|b| &b[..])).passed() {
                match storage.write_blocks(piece, &blocks) {
                    Ok(()) => DiskResult::PieceWritten {
                        piece,
                        passed: true,
                    },
                    Err(e) => failed(e),
                }
            } else {
                DiskResult::PieceWritten {
                    piece,
                    passed: false,
                }
            }
        }
        DiskJobKind::Read { piece, offset, len } => match storage.read(piece, offset, len) {
            Ok(data) => DiskResult::Read {
                piece,
                offset,
                data,
            },
            Err(e) => failed(e),
        },
        DiskJobKind::ReadLeaves {
            piece,
            len,
            data_len,
            count,
        } => match storage.read(piece, 0, len) {
            Ok(data) => DiskResult::Leaves {
                piece,
                leaves: fxtor_proto::merkle::piece_leaves(&data, data_len, count),
            },
            Err(e) => failed(e),
        },
        DiskJobKind::CheckPiece { piece, check } => check_piece(storage, piece, &check),
        DiskJobKind::CreateEmptyFiles => match storage.create_empty_files() {
            Ok(()) => DiskResult::Done,
            Err(e) => failed(e),
        },
    };
    DiskCompletion {
        id: job.id,
        torrent: job.torrent,
        result,
    }
}

/// The completion of a job that could not run at all (its torrent has no storage).
pub fn refuse_job(job: &DiskJob, why: impl Into<String>) -> DiskCompletion {
    DiskCompletion {
        id: job.id,
        torrent: job.torrent,
        result: DiskResult::Failed { error: why.into() },
    }
}

fn check_piece(storage: &Storage, piece: PieceIndex, check: &PieceCheck) -> DiskResult {
    match storage.read_piece(piece) {
        Ok(data) => DiskResult::Checked {
            piece,
            passed: check.verify([&data[..]]).passed(),
        },
        Err(e) if is_absent(&e) => DiskResult::Checked {
            piece,
            passed: false,
        },
        Err(e) => failed(e),
    }
}

/// A file that is not there, or shorter than the torrent says: the piece is simply absent.
fn is_absent(e: &StorageError) -> bool {
    matches!(
        e.source.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::UnexpectedEof
    )
}

fn failed(e: StorageError) -> DiskResult {
    DiskResult::Failed {
        error: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use fxtor_proto::create::{TorrentBuilder, TorrentVersion};
    use fxtor_proto::session::{DiskJobId, TorrentId};
    use fxtor_proto::TorrentInfo;

    const PIECE: u32 = 32_768;

    /// A multi-file torrent and its content (the files' bytes, pads excluded).
    fn torrent(version: TorrentVersion) -> (TorrentInfo, Vec<u8>) {
        let sizes = [50_000u64, 0, 7, 40_000];
        let mut b = TorrentBuilder::multi_file("t");
        for (i, s) in sizes.iter().enumerate() {
            b.add_file(vec![format!("f{i}")], *s);
        }
        b.set_version(version).set_piece_length(PIECE);
        let total: u64 = sizes.iter().sum();
        let data: Vec<u8> = (0..total).map(|i| (i * 31 % 251) as u8).collect();
        let mut h = b.into_hasher().unwrap();
        h.update(&data).unwrap();
        (
            TorrentInfo::from_bytes(&h.finish().unwrap().bytes).unwrap(),
            data,
        )
    }

    /// The torrent's byte stream, pads as zeros: what a peer sends.
    fn stream(info: &TorrentInfo, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut at = 0;
        for f in info.files().files() {
            if f.is_pad() {
                out.resize(out.len() + f.size() as usize, 0);
            } else {
                out.extend_from_slice(&data[at..at + f.size() as usize]);
                at += f.size() as usize;
            }
        }
        out
    }

    fn job(kind: DiskJobKind) -> DiskJob {
        DiskJob {
            id: DiskJobId(7),
            torrent: TorrentId(3),
            kind,
        }
    }

    fn piece_blocks(bytes: &[u8], info: &TorrentInfo, p: u32) -> Vec<Bytes> {
        let start = (p * PIECE) as usize;
        let len = info.piece_size(PieceIndex(p)) as usize;
        bytes[start..start + len]
            .chunks(16_384)
            .map(Bytes::copy_from_slice)
            .collect()
    }

    #[test]
    fn write_check_and_read_every_piece_of_every_version() {
        for version in [
            TorrentVersion::V1,
            TorrentVersion::V2,
            TorrentVersion::Hybrid,
        ] {
            let (info, data) = torrent(version);
            let bytes = stream(&info, &data);
            let dir = tempfile::tempdir().unwrap();
            let storage = Storage::new(dir.path(), &info);
            for p in 0..info.num_pieces() {
                let piece = PieceIndex(p);
                let check = PieceCheck::for_piece(&info, piece).unwrap();
                // Nothing on disk yet: the check fails, the job does not.
                let done = run_job(&storage, job(DiskJobKind::CheckPiece { piece, check }));
                assert_eq!(
                    done.result,
                    DiskResult::Checked {
                        piece,
                        passed: false
                    },
                    "{version:?} piece {p}"
                );
                let done = run_job(
                    &storage,
                    job(DiskJobKind::WritePiece {
                        piece,
                        blocks: piece_blocks(&bytes, &info, p),
                        check,
                    }),
                );
                assert_eq!((done.id, done.torrent), (DiskJobId(7), TorrentId(3)));
                assert_eq!(
                    done.result,
                    DiskResult::PieceWritten {
                        piece,
                        passed: true
                    }
                );
                let done = run_job(&storage, job(DiskJobKind::CheckPiece { piece, check }));
                assert_eq!(
                    done.result,
                    DiskResult::Checked {
                        piece,
                        passed: true
                    }
                );
            }
            let done = run_job(
                &storage,
                job(DiskJobKind::Read {
                    piece: PieceIndex(1),
                    offset: 100,
                    len: 20_000,
                }),
            );
            let start = PIECE as usize + 100;
            assert_eq!(
                done.result,
                DiskResult::Read {
                    piece: PieceIndex(1),
                    offset: 100,
                    data: Bytes::copy_from_slice(&bytes[start..start + 20_000]),
                }
            );
            let done = run_job(&storage, job(DiskJobKind::CreateEmptyFiles));
            assert_eq!(done.result, DiskResult::Done);
            assert!(dir.path().join("t/f1").is_file());
            // The files hold exactly the content: pads were never written.
            let mut on_disk = Vec::new();
            for i in 0..4 {
                on_disk.extend(std::fs::read(dir.path().join(format!("t/f{i}"))).unwrap());
            }
            assert_eq!(on_disk, data, "{version:?}");
        }
    }

    #[test]
    fn a_corrupt_piece_is_never_written() {
        let (info, data) = torrent(TorrentVersion::Hybrid);
        let mut bytes = stream(&info, &data);
        bytes[5] ^= 0x40;
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::new(dir.path(), &info);
        let piece = PieceIndex(0);
        let done = run_job(
            &storage,
            job(DiskJobKind::WritePiece {
                piece,
                blocks: piece_blocks(&bytes, &info, 0),
                check: PieceCheck::for_piece(&info, piece).unwrap(),
            }),
        );
        assert_eq!(
            done.result,
            DiskResult::PieceWritten {
                piece,
                passed: false
            }
        );
        assert!(!dir.path().join("t").exists(), "nothing was created");
    }

    #[test]
    fn short_and_corrupt_files_fail_their_pieces_not_the_job() {
        let (info, data) = torrent(TorrentVersion::V1);
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("t");
        std::fs::create_dir_all(&root).unwrap();
        // f0 is cut short; f3 is whole but one byte is wrong.
        std::fs::write(root.join("f0"), &data[..40_000]).unwrap();
        std::fs::write(root.join("f2"), &data[50_000..50_007]).unwrap();
        let mut f3 = data[50_007..].to_vec();
        f3[39_000] ^= 1;
        std::fs::write(root.join("f3"), &f3).unwrap();
        let storage = Storage::new(dir.path(), &info);
        let verdicts: Vec<bool> = (0..info.num_pieces())
            .map(|p| {
                let piece = PieceIndex(p);
                let check = PieceCheck::for_piece(&info, piece).unwrap();
                match run_job(&storage, job(DiskJobKind::CheckPiece { piece, check })).result {
                    DiskResult::Checked { passed, .. } => passed,
                    other => panic!("piece {p}: {other:?}"),
                }
            })
            .collect();
        // v1 pieces run across files (no pads): 0 lies in what f0 has, 1 reaches past the
        // end of the short f0, 2 is in f3 and holds the flipped byte.
        assert_eq!(verdicts, [true, false, false]);
    }

    #[test]
    fn other_io_errors_fail_the_job() {
        let (info, _) = torrent(TorrentVersion::V1);
        let dir = tempfile::tempdir().unwrap();
        // A directory where a file should be: neither missing nor short.
        std::fs::create_dir_all(dir.path().join("t/f0/x")).unwrap();
        let storage = Storage::new(dir.path(), &info);
        let piece = PieceIndex(0);
        let check = PieceCheck::for_piece(&info, piece).unwrap();
        let done = run_job(&storage, job(DiskJobKind::CheckPiece { piece, check }));
        assert!(
            matches!(&done.result, DiskResult::Failed { error } if error.contains("f0")),
            "{:?}",
            done.result
        );
        let done = run_job(
            &storage,
            job(DiskJobKind::Read {
                piece: PieceIndex(99),
                offset: 0,
                len: 1,
            }),
        );
        assert!(matches!(done.result, DiskResult::Failed { .. }));
    }
}
