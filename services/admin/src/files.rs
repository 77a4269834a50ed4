//! Writing secret-bearing files (the broker's password and ACL files, the
//! demo's key list) so that nobody ever reads a half-written or world-readable
//! one: a temporary file in the same directory, created with mode 0600,
//! flushed to disk, optionally handed to the broker's user, then renamed over
//! the target in one step.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rand::RngCore;

use crate::AdminError;

/// The owner (numeric uid and optional gid) to give a written file, e.g. the
/// uid the broker runs as: the broker drops root before it reads its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: Option<u32>,
}

impl FromStr for Owner {
    type Err = String;

    /// `UID` or `UID:GID`, numeric (names differ between a container and its host).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let number = |part: &str| {
            part.parse::<u32>().map_err(|_| {
                format!("{s:?} is not UID or UID:GID (numbers, e.g. \"$(id -u mosquitto):$(id -g mosquitto)\")")
            })
        };
        match s.split_once(':') {
            None => Ok(Owner { uid: number(s)?, gid: None }),
            Some((uid, gid)) => Ok(Owner { uid: number(uid)?, gid: Some(number(gid)?) }),
        }
    }
}

/// Replaces `path` with `contents`, mode 0600, atomically.
pub fn write_private(path: &Path, contents: &[u8], owner: Option<Owner>) -> Result<(), AdminError> {
    let failed = |source: std::io::Error| AdminError::Write { path: path.to_owned(), source };
    let name = path.file_name().ok_or_else(|| AdminError::Input(format!("{} is not a file name", path.display())))?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    let mut suffix = [0u8; 6];
    rand::thread_rng().fill_bytes(&mut suffix);
    let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    let temporary = dir.join(format!(".{}.tmp-{suffix}", name.to_string_lossy()));
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temporary)?;
        // The umask can only take bits away; set exactly 0600 in case it took too many.
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
        file.write_all(contents)?;
        file.sync_all()?;
        if let Some(owner) = owner {
            std::os::unix::fs::chown(&temporary, Some(owner.uid), owner.gid)?;
        }
        fs::rename(&temporary, path)?;
        // Make the rename itself durable; a directory that cannot be synced is no reason to fail.
        if let Ok(dir) = File::open(&dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result.map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn owners_are_numeric() {
        assert_eq!("101".parse::<Owner>(), Ok(Owner { uid: 101, gid: None }));
        assert_eq!("101:102".parse::<Owner>(), Ok(Owner { uid: 101, gid: Some(102) }));
        assert!("mosquitto".parse::<Owner>().unwrap_err().contains("UID:GID"));
        assert!("1:".parse::<Owner>().is_err());
    }

    #[test]
    fn writes_replace_the_file_with_mode_0600_and_leave_no_temporary() {
        let dir = std::env::temp_dir().join(format!("hoheit-admin-files-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secret.txt");
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&path, b"new", None).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "only the target is left");
        let missing = dir.join("no-such-dir").join("x");
        assert!(matches!(write_private(&missing, b"x", None), Err(AdminError::Write { .. })));
        fs::remove_dir_all(&dir).unwrap();
    }
}
