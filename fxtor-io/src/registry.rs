//! The storages of a session's torrents, by [`TorrentId`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fxtor_proto::session::TorrentId;
use fxtor_proto::TorrentInfo;

use crate::storage::Storage;

/// Where each torrent of a session keeps its files.
///
/// A torrent added from a .torrent has its [`Storage`] at once; one added from a magnet link
/// has only its save path until its metadata is known ([`set_info`](Self::set_info)).
#[derive(Debug, Default)]
pub struct StorageRegistry {
    torrents: HashMap<TorrentId, Entry>,
}

#[derive(Debug)]
struct Entry {
    save_path: PathBuf,
    storage: Option<Arc<Storage>>,
}

impl StorageRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a torrent's save path, and its storage if the metadata is known.
    pub fn insert(&mut self, torrent: TorrentId, save_path: PathBuf, info: Option<&TorrentInfo>) {
        let storage = info.map(|info| Arc::new(Storage::new(&save_path, info)));
        self.torrents.insert(torrent, Entry { save_path, storage });
    }

    /// Gives a torrent its storage once its metadata is known; `false` if it is not registered.
    pub fn set_info(&mut self, torrent: TorrentId, info: &TorrentInfo) -> bool {
        match self.torrents.get_mut(&torrent) {
            Some(entry) => {
                entry.storage = Some(Arc::new(Storage::new(&entry.save_path, info)));
                true
            }
            None => false,
        }
    }

    /// A torrent's storage (`None`: unknown torrent, or its metadata is not known yet).
    pub fn storage(&self, torrent: TorrentId) -> Option<Arc<Storage>> {
        self.torrents.get(&torrent)?.storage.clone()
    }

    /// A torrent's save path.
    pub fn save_path(&self, torrent: TorrentId) -> Option<&Path> {
        Some(&self.torrents.get(&torrent)?.save_path)
    }

    /// Forgets a torrent; its storage, if it had one (to close or delete its files).
    pub fn remove(&mut self, torrent: TorrentId) -> Option<Arc<Storage>> {
        self.torrents.remove(&torrent)?.storage
    }

    /// The registered torrents.
    pub fn len(&self) -> usize {
        self.torrents.len()
    }

    /// Whether no torrent is registered.
    pub fn is_empty(&self) -> bool {
        self.torrents.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fxtor_proto::create::TorrentBuilder;

    #[test]
    fn storage_comes_with_the_metadata() {
        let mut h = TorrentBuilder::single_file("x", 3).into_hasher().unwrap();
        h.update(b"abc").unwrap();
        let info = TorrentInfo::from_bytes(&h.finish().unwrap().bytes).unwrap();
        let mut reg = StorageRegistry::new();
        reg.insert(TorrentId(1), "/a".into(), Some(&info));
        reg.insert(TorrentId(2), "/b".into(), None);
        assert!(reg.storage(TorrentId(1)).is_some());
        assert!(reg.storage(TorrentId(2)).is_none());
        assert_eq!(reg.save_path(TorrentId(2)), Some(Path::new("/b")));
        assert!(reg.set_info(TorrentId(2), &info));
        assert!(!reg.set_info(TorrentId(3), &info));
        assert!(reg.storage(TorrentId(2)).is_some());
        assert!(reg.remove(TorrentId(1)).is_some());
        assert_eq!(reg.len(), 1);
        assert!(reg.storage(TorrentId(1)).is_none());
    }
}
