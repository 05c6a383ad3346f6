//! A platform's backups in a folder of the test's own: the sealing key file and
//! the local storage beside it.

use std::path::{Path, PathBuf};

use super::random;

/// The tests' sealing key (never a real one): the logs must never show it.
pub const KEY: &str = "5f1e0c3b9a7d2e4f6a8b0c1d3e5f7a9b2c4d6e8f0a1b3c5d7e9f1a2b4c6d8e0f";

/// A key file and a backup folder of the test's own (the folder's parent holds
/// both; remove it at the end).
pub fn backup_dirs() -> (PathBuf, PathBuf) {
    let root = std::env::temp_dir().join(format!("fpt-backups-{}", random(10)));
    std::fs::create_dir_all(root.join("store")).unwrap();
    let key = root.join("key");
    std::fs::write(&key, format!("{KEY}\n")).unwrap();
    (key, root.join("store"))
}

/// Backups on, by hand only, into `dir`, the scheduler looking every second.
pub fn local_backups(key: &Path, dir: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("BACKUP_KEY_FILE", key.display().to_string()),
        ("BACKUP_DIR", dir.display().to_string()),
        ("BACKUP_SCHEDULE", "off".into()),
        ("BACKUP_TICK_SECS", "1".into()),
    ]
}
