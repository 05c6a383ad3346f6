//! Sealing backups: XChaCha20-Poly1305 in the STREAM construction (RustCrypto's
//! `chacha20poly1305`), so a dump of any size is encrypted and authenticated in
//! 64 KiB chunks as it streams, and a reader knows at the first altered,
//! reordered or missing chunk (and at a cut-off end) that it is not what was
//! written. The key comes from configuration (`BACKUP_KEY_FILE`); the sealed
//! file names only its id (a hash), never the key.
//!
//! Layout: `FRESCOBK`, version byte 1, the key id (8 bytes), the nonce prefix
//! (19 random bytes), then the chunks: each `CHUNK + 16` bytes but the last,
//! which is shorter or equal (it may seal zero bytes). The header is every
//! chunk's associated data.

use chacha20poly1305::aead::stream::{DecryptorBE32, EncryptorBE32};
use chacha20poly1305::aead::{generic_array::GenericArray, KeyInit, Payload};
use chacha20poly1305::XChaCha20Poly1305;
use rand::RngCore;
use sha2::{Digest, Sha256};

const MAGIC: &[u8; 8] = b"FRESCOBK";
const VERSION: u8 = 1;
const KEY_ID_LEN: usize = 8;
const NONCE_PREFIX_LEN: usize = 19;
pub const HEADER_LEN: usize = MAGIC.len() + 1 + KEY_ID_LEN + NONCE_PREFIX_LEN;
/// Plaintext bytes per chunk.
pub const CHUNK: usize = 64 * 1024;
const TAG: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("not a sealed backup (it does not begin with the backup header)")]
    NotSealed,
    #[error("sealed with format version {0}, which this release cannot read")]
    Version(u8),
    #[error("sealed with another key (key id {found}); the configured key's id is {expected}")]
    WrongKey { found: String, expected: String },
    #[error("the backup was altered or damaged: chunk {0} fails its authentication")]
    Tampered(u64),
    #[error("the backup is cut short: it ends before its last chunk")]
    Truncated,
}

/// The 32-byte key backups are sealed with.
#[derive(Clone)]
pub struct BackupKey {
    key: [u8; 32],
    id: [u8; KEY_ID_LEN],
}

impl std::fmt::Debug for BackupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BackupKey(id {})", self.id())
    }
}

impl BackupKey {
    /// From the key file's text: 64 hex digits (surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<Self, String> {
        let bytes = hex::decode(text.trim())
            .map_err(|_| "the backup key must be 64 hexadecimal digits (32 bytes)".to_owned())?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "the backup key must be 64 hexadecimal digits (32 bytes)".to_owned())?;
        let digest = Sha256::new()
            .chain_update(b"fresco-platform backup key id\0")
            .chain_update(key)
            .finalize();
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        Ok(Self { key, id })
    }

    /// A new random key, as its file's text.
    pub fn generate() -> String {
        let mut key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        hex::encode(key)
    }

    /// The key's id: names it in manifests and errors without revealing it.
    pub fn id(&self) -> String {
        hex::encode(self.id)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(GenericArray::from_slice(&self.key))
    }
}

/// Seals a stream: `push` what comes, then `finish`; each returns the sealed
/// bytes ready to write.
pub struct Sealer {
    header: [u8; HEADER_LEN],
    encryptor: Option<EncryptorBE32<XChaCha20Poly1305>>,
    pending: Vec<u8>,
    header_sent: bool,
}

impl Sealer {
    pub fn new(key: &BackupKey) -> Self {
        let mut prefix = [0u8; NONCE_PREFIX_LEN];
        rand::thread_rng().fill_bytes(&mut prefix);
        let mut header = [0u8; HEADER_LEN];
        header[..8].copy_from_slice(MAGIC);
        header[8] = VERSION;
        header[9..9 + KEY_ID_LEN].copy_from_slice(&key.id);
        header[9 + KEY_ID_LEN..].copy_from_slice(&prefix);
        let encryptor =
            EncryptorBE32::from_aead(key.cipher(), GenericArray::from_slice(&prefix));
        Self {
            header,
            encryptor: Some(encryptor),
            pending: Vec::with_capacity(2 * CHUNK),
            header_sent: false,
        }
    }

    fn start(&mut self) -> Vec<u8> {
        if self.header_sent {
            return Vec::new();
        }
        self.header_sent = true;
        self.header.to_vec()
    }

    /// Seals every whole chunk of what came so far but the last one, which may
    /// turn out to be the stream's end.
    pub fn push(&mut self, data: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(data);
        let mut out = self.start();
        let encryptor = self.encryptor.as_mut().expect("push after finish");
        // Whole chunks are sealed where they lie; what is left moves once.
        let mut at = 0;
        while self.pending.len() - at > CHUNK {
            let sealed = encryptor
                .encrypt_next(Payload {
                    msg: &self.pending[at..at + CHUNK],
                    aad: &self.header,
                })
                .expect("sealing a chunk below the STREAM counter's limit");
            out.extend_from_slice(&sealed);
            at += CHUNK;
        }
        self.pending.drain(..at);
        out
    }

    /// Seals the rest as the last chunk.
    pub fn finish(mut self) -> Vec<u8> {
        let mut out = self.start();
        let encryptor = self.encryptor.take().expect("finish once");
        let sealed = encryptor
            .encrypt_last(Payload {
                msg: &self.pending,
                aad: &self.header,
            })
            .expect("sealing the last chunk");
        out.extend_from_slice(&sealed);
        out
    }
}

/// Opens a sealed stream: `push` what comes (plaintext out as chunks prove
/// authentic), then `finish`, which refuses a stream cut short.
pub struct Opener {
    key: BackupKey,
    header: Vec<u8>,
    decryptor: Option<DecryptorBE32<XChaCha20Poly1305>>,
    pending: Vec<u8>,
    chunk: u64,
}

impl Opener {
    pub fn new(key: &BackupKey) -> Self {
        Self {
            key: key.clone(),
            header: Vec::with_capacity(HEADER_LEN),
            decryptor: None,
            pending: Vec::with_capacity(2 * (CHUNK + TAG)),
            chunk: 0,
        }
    }

    fn read_header(&mut self) -> Result<(), SealError> {
        let h = &self.header;
        if &h[..8] != MAGIC {
            return Err(SealError::NotSealed);
        }
        if h[8] != VERSION {
            return Err(SealError::Version(h[8]));
        }
        if h[9..9 + KEY_ID_LEN] != self.key.id {
            return Err(SealError::WrongKey {
                found: hex::encode(&h[9..9 + KEY_ID_LEN]),
                expected: self.key.id(),
            });
        }
        let prefix = GenericArray::from_slice(&h[9 + KEY_ID_LEN..HEADER_LEN]);
        self.decryptor = Some(DecryptorBE32::from_aead(self.key.cipher(), prefix));
        Ok(())
    }

    pub fn push(&mut self, mut data: &[u8]) -> Result<Vec<u8>, SealError> {
        if self.decryptor.is_none() {
            let want = HEADER_LEN - self.header.len();
            let take = want.min(data.len());
            self.header.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.header.len() < HEADER_LEN {
                return Ok(Vec::new());
            }
            self.read_header()?;
        }
        self.pending.extend_from_slice(data);
        let mut out = Vec::new();
        let decryptor = self.decryptor.as_mut().expect("header read");
        let mut at = 0;
        while self.pending.len() - at > CHUNK + TAG {
            let plain = decryptor
                .decrypt_next(Payload {
                    msg: &self.pending[at..at + CHUNK + TAG],
                    aad: &self.header,
                })
                .map_err(|_| SealError::Tampered(self.chunk))?;
            self.chunk += 1;
            out.extend_from_slice(&plain);
            at += CHUNK + TAG;
        }
        self.pending.drain(..at);
        Ok(out)
    }

    pub fn finish(mut self) -> Result<Vec<u8>, SealError> {
        if self.header.len() < HEADER_LEN {
            let n = self.header.len().min(MAGIC.len());
            return Err(if self.header[..n] == MAGIC[..n] {
                SealError::Truncated
            } else {
                SealError::NotSealed
            });
        }
        if self.pending.len() < TAG {
            return Err(SealError::Truncated);
        }
        let decryptor = self.decryptor.take().expect("header read");
        // A stream cut at a chunk boundary ends on a chunk sealed as "not
        // last": it fails here like an altered one, and is named as cut short.
        decryptor
            .decrypt_last(Payload {
                msg: &self.pending,
                aad: &self.header,
            })
            .map_err(|_| {
                if self.pending.len() == CHUNK + TAG {
                    SealError::Truncated
                } else {
                    SealError::Tampered(self.chunk)
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> BackupKey {
        BackupKey::parse(&"ab".repeat(32)).unwrap()
    }

    fn seal(data: &[u8], piece: usize) -> Vec<u8> {
        let mut s = Sealer::new(&key());
        let mut out = Vec::new();
        for p in data.chunks(piece.max(1)) {
            out.extend(s.push(p));
        }
        out.extend(s.finish());
        out
    }

    fn open(sealed: &[u8], piece: usize, key: &BackupKey) -> Result<Vec<u8>, SealError> {
        let mut o = Opener::new(key);
        let mut out = Vec::new();
        for p in sealed.chunks(piece.max(1)) {
            out.extend(o.push(p)?);
        }
        out.extend(o.finish()?);
        Ok(out)
    }

    #[test]
    fn what_is_sealed_opens_to_the_same_bytes_whatever_the_pieces() {
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 17] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            for piece in [1000, CHUNK, 100_000] {
                let sealed = seal(&data, piece);
                assert_eq!(
                    sealed.len(),
                    HEADER_LEN + data.len() + TAG * (data.len() / CHUNK + usize::from(len % CHUNK != 0 || len == 0)),
                    "len {len}"
                );
                assert_eq!(open(&sealed, 777, &key()).unwrap(), data, "len {len}");
            }
        }
    }

    #[test]
    fn an_altered_byte_anywhere_is_refused() {
        let data = vec![42u8; 2 * CHUNK + 5];
        let sealed = seal(&data, CHUNK);
        for at in [HEADER_LEN + 3, HEADER_LEN + CHUNK + TAG + 1, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[at] ^= 1;
            assert!(
                matches!(open(&bad, 4096, &key()), Err(SealError::Tampered(_))),
                "byte {at}"
            );
        }
        // The header is authenticated too (the nonce prefix).
        let mut bad = sealed.clone();
        bad[HEADER_LEN - 1] ^= 1;
        assert!(matches!(open(&bad, 4096, &key()), Err(SealError::Tampered(0))));
    }

    #[test]
    fn a_cut_or_reordered_stream_and_another_key_are_refused() {
        let data = vec![7u8; 3 * CHUNK];
        let sealed = seal(&data, CHUNK);
        // Cut at a chunk boundary: what remains is whole chunks, none sealed last.
        let cut = &sealed[..HEADER_LEN + 2 * (CHUNK + TAG)];
        assert_eq!(open(cut, 4096, &key()), Err(SealError::Truncated));
        assert_eq!(open(&sealed[..20], 4096, &key()), Err(SealError::Truncated));
        // Two chunks swapped.
        let mut swapped = sealed.clone();
        let (a, b) = (HEADER_LEN, HEADER_LEN + CHUNK + TAG);
        let first = sealed[a..b].to_vec();
        swapped.copy_within(b..b + CHUNK + TAG, a);
        swapped[b..b + CHUNK + TAG].copy_from_slice(&first);
        assert!(matches!(open(&swapped, 4096, &key()), Err(SealError::Tampered(0))));
        let other = BackupKey::parse(&"cd".repeat(32)).unwrap();
        assert!(matches!(open(&sealed, 4096, &other), Err(SealError::WrongKey { .. })));
        assert_eq!(open(b"PGDMP plain dump, not sealed at all", 8, &key()), Err(SealError::NotSealed));
    }

    #[test]
    fn keys_are_64_hex_digits_and_shown_only_by_id() {
        assert!(BackupKey::parse("abc").is_err());
        assert!(BackupKey::parse(&"zz".repeat(32)).is_err());
        let k = BackupKey::parse(&format!("  {}\n", BackupKey::generate())).unwrap();
        assert_eq!(k.id().len(), 16);
        assert!(!format!("{k:?}").contains(&hex::encode(k.key)));
    }
}
