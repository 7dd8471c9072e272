//! A torrent's files on disk.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};
use fxtor_proto::metainfo::FileStorage;
use fxtor_proto::{FileIndex, PieceIndex, TorrentInfo};
use thiserror::Error;

use crate::pio;

/// A storage operation that failed, with the file it failed on.
#[derive(Debug, Error)]
#[error("cannot {op} {}: {source}", path.display())]
pub struct StorageError {
    /// What was being done: "open", "read", "write", "create directory for"…
    pub op: &'static str,
    /// The file.
    pub path: PathBuf,
    /// The operating system's error.
    #[source]
    pub source: io::Error,
}

impl StorageError {
    /// Whether the failure is only that the file does not exist (yet).
    pub fn is_not_found(&self) -> bool {
        self.source.kind() == io::ErrorKind::NotFound
    }
}

/// The most files kept open at once per torrent.
const DEFAULT_MAX_OPEN_FILES: usize = 128;

/// A torrent's files under a save path, as libtorrent lays them out: a multi-file torrent
/// named `N` lives in `save_path/N/…`, a single file at `save_path/N`.
///
/// Reads and writes are positioned (`pread`/`pwrite`), so one `Storage` can be shared by many
/// threads of a blocking pool. Files are opened on first use and kept open (up to a bound);
/// a file is created at its full size, sparse where the file system allows. Pad files are
/// never written and read back as zeros. Every path is built from the sanitised components
/// of [`FileStorage`] and checked again to be a plain relative path, so nothing can land
/// outside the save path.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// use fxtor_proto::create::TorrentBuilder;
/// use fxtor_proto::{PieceIndex, TorrentInfo};
/// use fxtor_io::Storage;
///
/// let mut hasher = TorrentBuilder::single_file("hello.txt", 5).into_hasher().unwrap();
/// hasher.update(b"hello").unwrap();
/// let info = TorrentInfo::from_bytes(&hasher.finish().unwrap().bytes).unwrap();
///
/// let storage = Storage::new(dir.path(), &info);
/// storage.write(PieceIndex(0), 0, b"hello").unwrap();
/// assert_eq!(&storage.read(PieceIndex(0), 1, 3).unwrap()[..], b"ell");
/// assert_eq!(std::fs::read(dir.path().join("hello.txt")).unwrap(), b"hello");
/// ```
#[derive(Debug)]
pub struct Storage {
    files: FileStorage,
    /// Where file `i` lives on disk (`None` for pad files, which are never stored).
    paths: Vec<Option<PathBuf>>,
    open: Mutex<OpenFiles>,
    /// Held while a piece is written: writers to one file serialise in the kernel anyway,
    /// and waiting here parks a thread where the kernel's lock would spin.
    writing: Mutex<()>,
}

#[derive(Debug, Default)]
struct OpenFiles {
    handles: HashMap<FileIndex, OpenFile>,
    clock: u64,
    max: usize,
}

#[derive(Debug)]
struct OpenFile {
    file: Arc<File>,
    writable: bool,
    last_use: u64,
}

impl Storage {
    /// The storage of `info`'s files under `save_path`.
    pub fn new(save_path: &Path, info: &TorrentInfo) -> Self {
        let root = if info.is_multi_file() {
            save_path.join(safe_relative(info.name()))
        } else {
            save_path.to_path_buf()
        };
        let files = info.files().clone();
        let paths = files
            .files()
            .iter()
            .map(|f| (!f.is_pad()).then(|| root.join(safe_relative(f.path_string()))))
            .collect();
        Self {
            files,
            paths,
            open: Mutex::new(OpenFiles {
                max: DEFAULT_MAX_OPEN_FILES,
                ..Default::default()
            }),
            writing: Mutex::new(()),
        }
    }

    /// The layout of the files.
    pub fn files(&self) -> &FileStorage {
        &self.files
    }

    /// Where a file lives on disk; `None` for pad files.
    pub fn path(&self, file: FileIndex) -> Option<&Path> {
        self.paths.get(file.get())?.as_deref()
    }

    /// Writes `data` at `offset` in `piece`, skipping the parts that fall in pad files.
    pub fn write(&self, piece: PieceIndex, offset: u32, data: &[u8]) -> Result<(), StorageError> {
        let slices = self.map(piece, offset, data.len())?;
        let mut at = 0usize;
        for slice in slices {
            let part = &data[at..at + slice.len as usize];
            at += slice.len as usize;
            if slice.pad {
                continue;
            }
            let file = self.handle(slice.file, true)?;
            pio::write_all_at(&file, part, slice.offset)
                .map_err(|e| self.error("write", slice.file, e))?;
        }
        Ok(())
    }

    /// Writes a whole piece given as consecutive blocks (as they came off the wire).
    pub fn write_blocks(&self, piece: PieceIndex, blocks: &[Bytes]) -> Result<(), StorageError> {
        // A panic while writing poisons nothing worth keeping: the lock guards no data.
        let _writing = self
            .writing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut offset = 0u32;
        for block in blocks {
            self.write(piece, offset, block)?;
            offset += block.len() as u32;
        }
        Ok(())
    }

    /// Reads `len` bytes at `offset` in `piece`; pad bytes read as zeros.
    pub fn read(&self, piece: PieceIndex, offset: u32, len: u32) -> Result<Bytes, StorageError> {
        let slices = self.map(piece, offset, len as usize)?;
        let mut buf = BytesMut::zeroed(len as usize);
        let mut at = 0usize;
        for slice in slices {
            let part = &mut buf[at..at + slice.len as usize];
            at += slice.len as usize;
            if slice.pad {
                continue;
            }
            let file = self.handle(slice.file, false)?;
            pio::read_exact_at(&file, part, slice.offset)
                .map_err(|e| self.error("read", slice.file, e))?;
        }
        Ok(buf.freeze())
    }

    /// Reads a whole piece.
    pub fn read_piece(&self, piece: PieceIndex) -> Result<Bytes, StorageError> {
        self.read(piece, 0, self.files.piece_size(piece))
    }

    /// Creates every empty file (they hold no piece, so no write ever creates them), as
    /// libtorrent does once a torrent has its files.
    pub fn create_empty_files(&self) -> Result<(), StorageError> {
        for (index, entry) in self.files.iter() {
            if entry.size() == 0 && !entry.is_pad() && !entry.is_symlink() {
                self.handle(index, true)?;
            }
        }
        Ok(())
    }

    /// Closes every cached handle (before moving or deleting the files).
    pub fn close_all(&self) {
        self.lock().handles.clear();
    }

    /// Deletes the torrent's files and the directories they leave empty.
    pub fn delete_files(&self) -> Result<(), StorageError> {
        self.close_all();
        for (index, path) in self.paths.iter().enumerate() {
            let Some(path) = path else { continue };
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.error("delete", FileIndex(index as u32), e)),
            }
            // Remove parent directories that are now empty; stop at the first that is not.
            let mut dir = path.parent();
            while let Some(d) = dir {
                if std::fs::remove_dir(d).is_err() {
                    break;
                }
                dir = d.parent();
            }
        }
        Ok(())
    }

    fn map(
        &self,
        piece: PieceIndex,
        offset: u32,
        len: usize,
    ) -> Result<smallvec::SmallVec<[fxtor_proto::metainfo::FileSlice; 4]>, StorageError> {
        let len32 = u32::try_from(len).ok();
        len32
            .and_then(|len| self.files.map_block(piece, offset, len))
            .ok_or_else(|| StorageError {
                op: "map",
                path: PathBuf::from(format!("piece {piece} offset {offset} length {len}")),
                source: io::Error::new(io::ErrorKind::InvalidInput, "range outside the piece"),
            })
    }

    fn lock(&self) -> MutexGuard<'_, OpenFiles> {
        // A panic while holding the lock leaves only a cache behind: keep using it.
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn error(&self, op: &'static str, file: FileIndex, source: io::Error) -> StorageError {
        let path = self.path(file).map(Path::to_path_buf).unwrap_or_default();
        StorageError { op, path, source }
    }

    /// The cached handle of a file, opening (and for writing, creating) it if needed.
    fn handle(&self, index: FileIndex, write: bool) -> Result<Arc<File>, StorageError> {
        let mut open = self.lock();
        open.clock += 1;
        let now = open.clock;
        if let Some(h) = open.handles.get_mut(&index) {
            if h.writable || !write {
                h.last_use = now;
                return Ok(h.file.clone());
            }
        }
        let path = self.path(index).ok_or_else(|| {
            self.error(
                "open",
                index,
                io::Error::new(io::ErrorKind::InvalidInput, "pad files are not stored"),
            )
        })?;
        let file = if write {
            self.open_for_write(index, path)?
        } else {
            File::open(path).map_err(|e| self.error("open", index, e))?
        };
        if open.handles.len() >= open.max {
            if let Some(oldest) = open
                .handles
                .iter()
                .min_by_key(|(_, h)| h.last_use)
                .map(|(i, _)| *i)
            {
                open.handles.remove(&oldest);
            }
        }
        let file = Arc::new(file);
        open.handles.insert(
            index,
            OpenFile {
                file: file.clone(),
                writable: write,
                last_use: now,
            },
        );
        Ok(file)
    }

    fn open_for_write(&self, index: FileIndex, path: &Path) -> Result<File, StorageError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| self.error("create directory for", index, e))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| self.error("open", index, e))?;
        let size = self.files.file(index).map_or(0, |f| f.size());
        let current = file
            .metadata()
            .map_err(|e| self.error("stat", index, e))?
            .len();
        if current < size {
            // Sparse on file systems that allow it: no bytes are written.
            file.set_len(size)
                .map_err(|e| self.error("allocate", index, e))?;
        }
        Ok(file)
    }
}

/// A relative path made only of normal components. `FileStorage` paths are sanitised when
/// the torrent is loaded; this is the last line of defence: anything else is dropped.
fn safe_relative(path: &str) -> PathBuf {
    Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(part) => Some(part),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use fxtor_proto::create::{TorrentBuilder, TorrentVersion};

    fn torrent(files: &[(&str, u64)], version: TorrentVersion) -> TorrentInfo {
        let mut b = TorrentBuilder::multi_file("t");
        for (p, s) in files {
            b.add_file(p.split('/').map(String::from).collect(), *s);
        }
        b.set_version(version).set_piece_length(16_384);
        let mut h = b.into_hasher().unwrap();
        let total: u64 = files.iter().map(|f| f.1).sum();
        h.update(&vec![1; total as usize]).unwrap();
        TorrentInfo::from_bytes(&h.finish().unwrap().bytes).unwrap()
    }

    #[test]
    fn pieces_spanning_files_and_pads_round_trip() {
        let info = torrent(
            &[("a", 20_000), ("dir/b", 5_000), ("c", 40_000)],
            TorrentVersion::Hybrid,
        );
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::new(dir.path(), &info);
        let mut expected = Vec::new();
        for p in 0..info.num_pieces() {
            let size = info.piece_size(PieceIndex(p));
            let data: Vec<u8> = (0..size).map(|i| (i as u8) ^ (p as u8)).collect();
            storage.write(PieceIndex(p), 0, &data).unwrap();
            expected.push(data);
        }
        for (p, data) in expected.iter().enumerate() {
            let back = storage.read_piece(PieceIndex(p as u32)).unwrap();
            // Pad bytes are not stored: they read back as zeros.
            let slices = info
                .files()
                .map_block(PieceIndex(p as u32), 0, data.len() as u32)
                .unwrap();
            let mut at = 0;
            for s in slices {
                let range = at..at + s.len as usize;
                if s.pad {
                    assert!(back[range.clone()].iter().all(|&b| b == 0));
                } else {
                    assert_eq!(back[range.clone()], data[range.clone()]);
                }
                at = range.end;
            }
        }
        assert_eq!(
            std::fs::metadata(dir.path().join("t/a")).unwrap().len(),
            20_000
        );
        assert_eq!(
            std::fs::metadata(dir.path().join("t/dir/b")).unwrap().len(),
            5_000
        );
        assert!(
            !dir.path().join("t/.pad").exists(),
            "pad files are never written"
        );
    }

    #[test]
    fn files_are_created_at_full_size_and_reading_missing_files_fails() {
        let info = torrent(&[("a", 100_000), ("empty", 0)], TorrentVersion::V1);
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::new(dir.path(), &info);
        let err = storage.read(PieceIndex(0), 0, 10).unwrap_err();
        assert!(err.is_not_found(), "{err}");
        storage.write(PieceIndex(6), 0, &[9; 100]).unwrap();
        assert_eq!(
            std::fs::metadata(dir.path().join("t/a")).unwrap().len(),
            100_000
        );
        storage.create_empty_files().unwrap();
        assert_eq!(
            std::fs::metadata(dir.path().join("t/empty")).unwrap().len(),
            0
        );
        storage.delete_files().unwrap();
        assert!(!dir.path().join("t").exists());
    }

    #[test]
    fn ranges_outside_a_piece_are_refused() {
        let info = torrent(&[("a", 20_000)], TorrentVersion::V1);
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::new(dir.path(), &info);
        assert!(storage.write(PieceIndex(1), 3_000, &[0; 2_000]).is_err());
        assert!(storage.read(PieceIndex(9), 0, 1).is_err());
    }

    #[test]
    fn only_normal_components_survive() {
        assert_eq!(
            safe_relative("../../etc/passwd"),
            PathBuf::from("etc/passwd")
        );
        assert_eq!(safe_relative("/abs/./x"), PathBuf::from("abs/x"));
    }
}
