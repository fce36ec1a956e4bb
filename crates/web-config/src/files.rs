//! Reading the files the exporter is pointed at (`--gitlab.token-file`, `--gitlab.ca-file`,
//! `--web.config.file` and the certificates it names): regular files only, never more than a
//! cap, and never waiting on a FIFO or a device. Errors name the file, never its content.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Cap of a token file or a web config file.
pub const MAX_SMALL: u64 = 1 << 20;
/// Cap of a PEM file (certificate bundles are a few hundred KiB).
pub const MAX_PEM: u64 = 16 << 20;

/// The content of the regular file at `path` (symbolic links followed), if it is at most
/// `limit` bytes. A FIFO, a device, a socket or a directory is refused at once, without being
/// opened (opening a device can do something by itself); the file is then opened without
/// blocking (`O_NONBLOCK`, which makes no difference to a regular file) and checked again to be
/// the same regular file before anything is read (it may have been replaced in between).
pub fn read(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    let cannot = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
    let before = std::fs::metadata(path).map_err(cannot)?;
    regular(path, &before)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(cannot)?;
    let metadata = file.metadata().map_err(cannot)?;
    regular(path, &metadata)?;
    if (metadata.dev(), metadata.ino()) != (before.dev(), before.ino()) {
        return Err(format!(
            "{} was replaced while it was being opened; try again",
            path.display()
        ));
    }
    let too_large = || format!("{} is larger than {limit} bytes; not read", path.display());
    if metadata.len() > limit {
        return Err(too_large());
    }
    let mut content = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    // The file may grow after the check: read one byte past the cap at most.
    file.take(limit + 1)
        .read_to_end(&mut content)
        .map_err(cannot)?;
    if content.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(content)
}

/// An error unless `metadata` is a regular file's.
fn regular(path: &Path, metadata: &std::fs::Metadata) -> Result<(), String> {
    let kind = metadata.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a file"
        };
        return Err(format!(
            "{} is not a regular file ({what}); give the path of a file",
            path.display()
        ));
    }
    Ok(())
}

/// [`read`], as UTF-8 text.
pub fn read_text(path: &Path, limit: u64) -> Result<String, String> {
    String::from_utf8(read(path, limit)?)
        .map_err(|_| format!("{} is not UTF-8 text", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_under_the_cap() {
        let dir = std::env::temp_dir().join(format!("gae-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "glpat-x\n").unwrap();
        assert_eq!(read(&file, 8).unwrap(), b"glpat-x\n");
        let err = read(&file, 7).unwrap_err();
        assert!(err.contains("larger than 7 bytes"), "{err}");
        let link = dir.join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(read_text(&link, 100).unwrap(), "glpat-x\n");
        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()));
        let err = read(&fifo, 100).unwrap_err();
        assert!(err.contains("not a regular file (a FIFO)"), "{err}");
        let err = read(Path::new("/dev/zero"), 100).unwrap_err();
        assert!(err.contains("(a device)"), "{err}");
        let err = read(&dir, 100).unwrap_err();
        assert!(err.contains("(a directory)"), "{err}");
        let err = read(&dir.join("missing"), 100).unwrap_err();
        assert!(
            err.contains("cannot read") && err.contains("missing"),
            "{err}"
        );
        std::fs::write(&file, b"\xff\xfe").unwrap();
        assert!(read_text(&file, 100).unwrap_err().contains("not UTF-8"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
