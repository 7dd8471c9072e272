//! .torrent parsing never panics; an accepted torrent's file layout is self-consistent and
//! every path stays inside the torrent's directory.
#![no_main]

use fxtor_proto::TorrentInfo;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = TorrentInfo::from_bytes(data) {
        let files = info.files();
        let mut offset = 0u64;
        for f in files.files() {
            assert_eq!(f.offset(), offset);
            offset += f.size();
            let path = f.path_string();
            assert!(!path.starts_with('/'), "{path}");
            assert!(!path.split('/').any(|c| c == ".." || c == "." || c.is_empty()), "{path}");
        }
        assert_eq!(offset, info.total_size());
    }
    let _ = TorrentInfo::from_info_bytes(data);
});
