//! Where sealed backups are kept: behind `object_store`'s `ObjectStore` trait, a
//! local directory (`BACKUP_STORAGE=local`, the default) or an S3-compatible
//! bucket (`BACKUP_STORAGE=s3`: the off-site option). Objects are written in
//! parts as they stream (never held whole) and only appear once complete; the
//! S3 secret is read from configuration and never shown.

use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};

use crate::config::{BackupConfig, StorageKind};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("backup storage ({storage}): {message}")]
    Failed { storage: String, message: String },
    #[error("the backup object {0} is not in the backup storage")]
    Missing(String),
    #[error("backup storage is not configured: {0}")]
    Config(String),
}

/// Parts uploaded at once while an object streams in.
const PARTS_IN_FLIGHT: usize = 2;
/// Part size (S3's minimum is 5 MiB).
const PART_BYTES: usize = 8 * 1024 * 1024;

#[derive(Clone)]
pub struct BackupStorage {
    store: Arc<dyn ObjectStore>,
    /// `local:/var/lib/…` or `s3://bucket/prefix`: recorded with each backup.
    name: String,
}

impl std::fmt::Debug for BackupStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl BackupStorage {
    pub fn from_config(cfg: &BackupConfig) -> Result<Self, StorageError> {
        match cfg.backup_storage {
            StorageKind::Local => {
                let dir = &cfg.backup_dir;
                std::fs::create_dir_all(dir).map_err(|e| {
                    StorageError::Config(format!("BACKUP_DIR {}: {e}", dir.display()))
                })?;
                let store = LocalFileSystem::new_with_prefix(dir)
                    .map_err(|e| {
                        StorageError::Config(format!("BACKUP_DIR {}: {e}", dir.display()))
                    })?
                    .with_automatic_cleanup(true);
                Ok(Self {
                    store: Arc::new(store),
                    name: format!("local:{}", dir.display()),
                })
            }
            StorageKind::S3 => {
                let need = |v: &Option<String>, name: &str| {
                    v.clone().filter(|s| !s.trim().is_empty()).ok_or_else(|| {
                        StorageError::Config(format!("BACKUP_STORAGE=s3 needs {name}"))
                    })
                };
                let bucket = need(&cfg.backup_s3_bucket, "BACKUP_S3_BUCKET")?;
                let mut b = AmazonS3Builder::new()
                    .with_bucket_name(&bucket)
                    .with_region(&cfg.backup_s3_region)
                    .with_access_key_id(need(
                        &cfg.backup_s3_access_key_id,
                        "BACKUP_S3_ACCESS_KEY_ID",
                    )?)
                    .with_secret_access_key(cfg.s3_secret()?.ok_or_else(|| {
                        StorageError::Config(
                            "BACKUP_STORAGE=s3 needs BACKUP_S3_SECRET_ACCESS_KEY(_FILE)".into(),
                        )
                    })?);
                if let Some(endpoint) = cfg.backup_s3_endpoint.as_ref().filter(|e| !e.is_empty()) {
                    b = b
                        .with_endpoint(endpoint)
                        .with_allow_http(endpoint.starts_with("http://"))
                        .with_virtual_hosted_style_request(false);
                }
                let store = b
                    .build()
                    .map_err(|e| StorageError::Config(format!("S3 settings: {e}")))?;
                let prefix = cfg.backup_s3_prefix.trim_matches('/');
                let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
                    Arc::new(store)
                } else {
                    Arc::new(object_store::prefix::PrefixStore::new(store, prefix))
                };
                Ok(Self {
                    store,
                    name: format!("s3://{bucket}/{prefix}"),
                })
            }
        }
    }

    /// Any `ObjectStore` (the unit tests use the in-memory one).
    pub fn with_store(store: Arc<dyn ObjectStore>, name: &str) -> Self {
        Self {
            store,
            name: name.to_owned(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn failed(&self, e: impl std::fmt::Display) -> StorageError {
        StorageError::Failed {
            storage: self.name.clone(),
            message: e.to_string(),
        }
    }

    /// Starts writing `key`; nothing is visible under it until `finish`.
    pub async fn writer(&self, key: &str) -> Result<ObjectWriter, StorageError> {
        let upload = self
            .store
            .put_multipart(&ObjectPath::from(key))
            .await
            .map_err(|e| self.failed(e))?;
        Ok(ObjectWriter {
            storage: self.clone(),
            upload: Some(WriteMultipart::new_with_chunk_size(upload, PART_BYTES)),
        })
    }

    /// Writes a small object whole (a manifest).
    pub async fn put_small(&self, key: &str, body: Vec<u8>) -> Result<(), StorageError> {
        self.store
            .put(&ObjectPath::from(key), body.into())
            .await
            .map_err(|e| self.failed(e))?;
        Ok(())
    }

    /// Reads `key` as a stream of pieces.
    pub async fn read(
        &self,
        key: &str,
    ) -> Result<BoxStream<'static, Result<Bytes, StorageError>>, StorageError> {
        let got = self
            .store
            .get(&ObjectPath::from(key))
            .await
            .map_err(|e| match e {
                object_store::Error::NotFound { .. } => StorageError::Missing(key.to_owned()),
                e => self.failed(e),
            })?;
        let this = self.clone();
        Ok(got.into_stream().map_err(move |e| this.failed(e)).boxed())
    }

    /// Whether `key` is there, and its size.
    pub async fn size(&self, key: &str) -> Result<Option<u64>, StorageError> {
        match self.store.head(&ObjectPath::from(key)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.failed(e)),
        }
    }

    /// Removes `key`; one already gone is fine.
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match self.store.delete(&ObjectPath::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.failed(e)),
        }
    }

    /// Every key under `prefix` (for the orphan check and the tests).
    pub async fn keys(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let prefix = ObjectPath::from(prefix);
        self.store
            .list(Some(&prefix))
            .map_ok(|meta| meta.location.to_string())
            .try_collect()
            .await
            .map_err(|e| self.failed(e))
    }
}

/// An object being written in parts.
pub struct ObjectWriter {
    storage: BackupStorage,
    upload: Option<WriteMultipart>,
}

impl ObjectWriter {
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        let upload = self.upload.as_mut().expect("write before finish");
        upload
            .wait_for_capacity(PARTS_IN_FLIGHT)
            .await
            .map_err(|e| self.storage.failed(e))?;
        upload.write(bytes);
        Ok(())
    }

    pub async fn finish(mut self) -> Result<(), StorageError> {
        let upload = self.upload.take().expect("finish once");
        upload.finish().await.map_err(|e| self.storage.failed(e))?;
        Ok(())
    }

    /// Gives up: the parts written so far are discarded.
    pub async fn abort(mut self) {
        if let Some(upload) = self.upload.take() {
            let _ = upload.abort().await;
        }
    }
}
