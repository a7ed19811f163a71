//! Export storage through `object_store`: a local folder by default, an
//! S3-compatible bucket (AWS, MinIO, R2, ...) when `EXPORT_S3_BUCKET` is set.
//! Objects are named by key; their location is a `file://` or `s3://` URL.

use std::path::PathBuf;
use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutOptions, PutPayload};

use crate::config::{ExportTarget, S3Settings};

/// The storage could not be set up or used.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The local folder could not be made.
    #[error("cannot create the export folder {path}: {source}")]
    CreateDir {
        /// The folder.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// `object_store` failed.
    #[error("export storage: {0}")]
    Store(#[from] object_store::Error),
    /// A key that is not a valid object path.
    #[error("{key:?} is not a valid object key: {source}")]
    BadKey {
        /// The key.
        key: String,
        /// Why.
        source: object_store::path::Error,
    },
}

/// Where the objects are, for their locations.
#[derive(Debug, Clone)]
enum Place {
    Local(PathBuf),
    S3 { bucket: String },
}

/// A stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// `file:///...` or `s3://bucket/key`.
    pub location: String,
    /// The key within the storage.
    pub key: String,
    /// Its size.
    pub size_bytes: u64,
}

/// The export storage. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ExportStore {
    store: Arc<dyn ObjectStore>,
    place: Place,
    prefix: String,
}

fn s3(s: &S3Settings) -> Result<Arc<dyn ObjectStore>, StorageError> {
    let mut b = AmazonS3Builder::new().with_bucket_name(&s.bucket).with_region(&s.region).with_allow_http(s.allow_http);
    if let Some(endpoint) = &s.endpoint {
        b = b.with_endpoint(endpoint);
    }
    if let (Some(id), Some(secret)) = (&s.access_key_id, &s.secret_access_key) {
        b = b.with_access_key_id(id).with_secret_access_key(secret);
    }
    Ok(Arc::new(b.build()?))
}

impl ExportStore {
    /// The storage for the configured target; keys are put under `prefix`.
    pub fn new(target: &ExportTarget, prefix: &str) -> Result<ExportStore, StorageError> {
        let (store, place): (Arc<dyn ObjectStore>, Place) = match target {
            ExportTarget::Local(dir) => {
                std::fs::create_dir_all(dir).map_err(|source| StorageError::CreateDir { path: dir.display().to_string(), source })?;
                let root = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
                (Arc::new(LocalFileSystem::new_with_prefix(&root)?), Place::Local(root))
            }
            ExportTarget::S3(settings) => (s3(settings)?, Place::S3 { bucket: settings.bucket.clone() }),
        };
        Ok(ExportStore { store, place, prefix: prefix.trim_matches('/').to_string() })
    }

    fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }

    fn path(key: &str) -> Result<ObjectPath, StorageError> {
        ObjectPath::parse(key).map_err(|source| StorageError::BadKey { key: key.to_string(), source })
    }

    /// Stores `bytes` as `name` (under the prefix), replacing any object there.
    pub async fn put(&self, name: &str, bytes: Vec<u8>) -> Result<StoredObject, StorageError> {
        let key = self.key(name);
        let size_bytes = bytes.len() as u64;
        self.store.put_opts(&Self::path(&key)?, PutPayload::from(bytes), PutOptions::default()).await?;
        let location = match &self.place {
            Place::Local(root) => format!("file://{}", root.join(&key).display()),
            Place::S3 { bucket } => format!("s3://{bucket}/{key}"),
        };
        Ok(StoredObject { location, key, size_bytes })
    }

    /// Reads an object back by key.
    pub async fn get(&self, key: &str) -> Result<Vec<u8>, StorageError> {
        let got = self.store.get_opts(&Self::path(key)?, Default::default()).await?;
        Ok(got.bytes().await?.to_vec())
    }
}
