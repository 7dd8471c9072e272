//! Resume files: a torrent's resume data (what the session's `save_resume_data` gives) kept
//! in a file between runs.
//!
//! A resume file is replaced atomically: the new data goes to a temporary file beside it,
//! is flushed to disk, and is renamed over the old one, so a process killed at any moment
//! leaves either the old file or the new one, never a torn mix.

use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use bytes::Bytes;

/// Reads a resume file; `Ok(None)` if there is none yet.
pub fn read_resume_file(path: &Path) -> io::Result<Option<Bytes>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(Bytes::from(bytes))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes a resume file atomically (temporary file, flush, rename).
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// use fxtor_io::resume::{read_resume_file, write_resume_file};
///
/// let path = dir.path().join("t.resume");
/// assert_eq!(read_resume_file(&path).unwrap(), None);
/// write_resume_file(&path, b"d5:piecei0ee").unwrap();
/// assert_eq!(read_resume_file(&path).unwrap().unwrap(), &b"d5:piecei0ee"[..]);
/// ```
pub fn write_resume_file(path: &Path, data: &[u8]) -> io::Result<()> {
    let temp = temp_path(path);
    let result = (|| {
        let mut file = File::create(&temp)?;
        file.write_all(data)?;
        file.sync_all()?;
        fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result?;
    // Make the rename itself durable where the platform allows syncing a directory.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(dir) = File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

/// The temporary file beside `path`: same directory (so the rename stays on one file
/// system), a name no torrent uses.
fn temp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "resume".into());
    name.push(format!(".{}.tmp", std::process::id()));
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_old_file_and_leaves_no_temporary_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.resume");
        write_resume_file(&path, b"first").unwrap();
        write_resume_file(&path, b"second, longer").unwrap();
        assert_eq!(
            read_resume_file(&path).unwrap().unwrap(),
            &b"second, longer"[..]
        );
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["a.resume"]);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.resume");
        write_resume_file(&path, b"old").unwrap();
        // The temporary name is taken by a directory: creating it fails.
        fs::create_dir(temp_path(&path)).unwrap();
        assert!(write_resume_file(&path, b"new").is_err());
        assert_eq!(read_resume_file(&path).unwrap().unwrap(), &b"old"[..]);
    }

    #[test]
    fn a_missing_directory_is_an_error_when_reading_nothing_when_absent() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write_resume_file(&dir.path().join("no/such/dir/x"), b"x").is_err());
        assert_eq!(read_resume_file(&dir.path().join("absent")).unwrap(), None);
    }
}
