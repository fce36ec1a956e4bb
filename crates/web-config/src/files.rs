//! Reading the files an exporter is pointed at (a token file, a CA file, the web config file
//! and the certificates it names): regular files only, never more than a cap, and never waiting
//! on a FIFO or a device. Errors ([`FileError`]) name the file, never its content.

use std::fmt;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Cap of a small text file: a token file or a web config file (1 MiB).
pub const MAX_SMALL: u64 = 1 << 20;
/// Cap of a PEM file (16 MiB; certificate bundles are a few hundred KiB).
pub const MAX_PEM: u64 = 16 << 20;

/// Why [`read`] or [`read_text`] gave no content. Each variant carries the path it is about;
/// the message names it and never quotes the file's content.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// The file could not be looked up, opened or read (missing, no permission, I/O error).
    #[error("cannot read {}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        error: std::io::Error,
    },
    /// The path names something other than a regular file; it was not opened.
    #[error("{} is not a regular file ({kind}); give the path of a file", path.display())]
    NotRegular {
        /// The path.
        path: PathBuf,
        /// What it is instead.
        kind: FileKind,
    },
    /// The file was replaced by another between the check and the opening.
    #[error("{} was replaced while it was being opened; try again", path.display())]
    Replaced {
        /// The file.
        path: PathBuf,
    },
    /// The file is larger than the cap it was read with; nothing of it is returned.
    #[error("{} is larger than {limit} bytes; not read", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The cap, in bytes.
        limit: u64,
    },
    /// [`read_text`] only: the content is not UTF-8.
    #[error("{} is not UTF-8 text", path.display())]
    NotUtf8 {
        /// The file.
        path: PathBuf,
    },
}

impl FileError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            FileError::Io { path, .. }
            | FileError::NotRegular { path, .. }
            | FileError::Replaced { path }
            | FileError::TooLarge { path, .. }
            | FileError::NotUtf8 { path } => path,
        }
    }
}

/// What a path refused by [`read`] names instead of a regular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileKind {
    /// A directory.
    Directory,
    /// A named pipe, which would block a reader until something writes to it.
    Fifo,
    /// A character or block device, which may never end (`/dev/zero`) or act when opened.
    Device,
    /// A Unix socket.
    Socket,
    /// Anything else that is not a regular file.
    Other,
}

impl fmt::Display for FileKind {
    /// As in messages: "a directory", "a FIFO", "a device", "a socket" or "not a file".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::Directory => "a directory",
            FileKind::Fifo => "a FIFO",
            FileKind::Device => "a device",
            FileKind::Socket => "a socket",
            FileKind::Other => "not a file",
        })
    }
}

/// The content of the regular file at `path` (symbolic links followed), if it is at most
/// `limit` bytes. A FIFO, a device, a socket or a directory is refused at once, without being
/// opened (opening a device can do something by itself); the file is then opened without
/// blocking (`O_NONBLOCK`, which makes no difference to a regular file) and checked again to be
/// the same regular file before anything is read (it may have been replaced in between).
pub fn read(path: &Path, limit: u64) -> Result<Vec<u8>, FileError> {
    let cannot = |error: std::io::Error| FileError::Io {
        path: path.to_owned(),
        error,
    };
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
        return Err(FileError::Replaced {
            path: path.to_owned(),
        });
    }
    let too_large = || FileError::TooLarge {
        path: path.to_owned(),
        limit,
    };
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
fn regular(path: &Path, metadata: &std::fs::Metadata) -> Result<(), FileError> {
    let kind = metadata.file_type();
    if kind.is_file() {
        return Ok(());
    }
    let kind = if kind.is_dir() {
        FileKind::Directory
    } else if kind.is_fifo() {
        FileKind::Fifo
    } else if kind.is_char_device() || kind.is_block_device() {
        FileKind::Device
    } else if kind.is_socket() {
        FileKind::Socket
    } else {
        FileKind::Other
    };
    Err(FileError::NotRegular {
        path: path.to_owned(),
        kind,
    })
}

/// [`read`], as UTF-8 text.
pub fn read_text(path: &Path, limit: u64) -> Result<String, FileError> {
    String::from_utf8(read(path, limit)?).map_err(|_| FileError::NotUtf8 {
        path: path.to_owned(),
    })
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
        assert!(
            matches!(err, FileError::TooLarge { limit: 7, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("larger than 7 bytes"), "{err}");
        let link = dir.join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(read_text(&link, 100).unwrap(), "glpat-x\n");
        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()));
        let err = read(&fifo, 100).unwrap_err();
        assert!(
            matches!(&err, FileError::NotRegular { kind: FileKind::Fifo, path } if *path == fifo),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("not a regular file (a FIFO)"),
            "{err}"
        );
        let err = read(Path::new("/dev/zero"), 100).unwrap_err();
        assert!(err.to_string().contains("(a device)"), "{err}");
        let err = read(&dir, 100).unwrap_err();
        assert!(err.to_string().contains("(a directory)"), "{err}");
        let missing = dir.join("missing");
        let err = read(&missing, 100).unwrap_err();
        assert_eq!(err.path(), missing);
        assert!(
            matches!(&err, FileError::Io { error, .. } if error.kind() == std::io::ErrorKind::NotFound),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains("cannot read") && message.contains("missing"),
            "{message}"
        );
        std::fs::write(&file, b"\xff\xfe").unwrap();
        let err = read_text(&file, 100).unwrap_err();
        assert!(matches!(err, FileError::NotUtf8 { .. }), "{err:?}");
        assert!(err.to_string().contains("not UTF-8"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
