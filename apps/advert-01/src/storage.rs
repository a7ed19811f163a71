//! Export storage through `object_store`: a local folder by default, an
//! S3-compatible bucket (AWS, MinIO, R2, ...) when `EXPORT_S3_BUCKET` is set.
//! Objects are named by key; their location is a `file://` or `s3://` URL.
//!
//! A key is the prefix (`EXPORT_PREFIX`, checked when the settings are read)
//! and one file name, each segment made of `[A-Za-z0-9._-]` and none of them
//! `.`, `..` or all dots ([`check_segment`]). So no name can hold a `/`, a
//! `\`, a NUL, a `%` escape or a traversal, neither when a PDF is stored
//! nor when one is read back through `/api/exports/...`: a read names a file
//! directly under the prefix, or nothing.

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
    /// A key or name that could leave the export prefix, or is not one of ours.
    #[error("{key:?} is not a valid export key: {reason}")]
    BadKey {
        /// The key.
        key: String,
        /// Why.
        reason: KeyError,
    },
}

/// Why a key segment is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// An empty segment (`a//b`, a leading `/`).
    #[error("it has an empty segment (or starts with /)")]
    Empty,
    /// `.`, `..` or any run of dots alone.
    #[error("{0:?} is not a file name")]
    Dots(String),
    /// A character outside `[A-Za-z0-9._-]`.
    #[error("{0:?} is not allowed in a key (only letters, digits, '.', '_' and '-')")]
    Character(char),
    /// Longer than [`MAX_SEGMENT_BYTES`].
    #[error("a segment is longer than {MAX_SEGMENT_BYTES} bytes")]
    TooLong,
    /// Not directly under the export prefix.
    #[error("exports are read from directly under the prefix {0:?}")]
    OutsidePrefix(String),
}

/// The longest key segment.
pub const MAX_SEGMENT_BYTES: usize = 200;

/// Checks one segment of a key: a plain file or folder name.
pub fn check_segment(segment: &str) -> Result<(), KeyError> {
    if segment.is_empty() {
        return Err(KeyError::Empty);
    }
    if segment.len() > MAX_SEGMENT_BYTES {
        return Err(KeyError::TooLong);
    }
    if let Some(c) = segment.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(KeyError::Character(c));
    }
    if segment.chars().all(|c| c == '.') {
        return Err(KeyError::Dots(segment.to_string()));
    }
    Ok(())
}

/// Checks an export prefix: empty, or segments separated by `/`.
pub fn check_prefix(prefix: &str) -> Result<(), KeyError> {
    if prefix.is_empty() {
        return Ok(());
    }
    prefix.split('/').try_for_each(check_segment)
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
    /// The storage for the configured target; keys are put under `prefix`
    /// (checked with [`check_prefix`]).
    pub fn new(target: &ExportTarget, prefix: &str) -> Result<ExportStore, StorageError> {
        let prefix = prefix.trim_matches('/');
        check_prefix(prefix).map_err(|reason| StorageError::BadKey { key: prefix.to_string(), reason })?;
        let (store, place): (Arc<dyn ObjectStore>, Place) = match target {
            ExportTarget::Local(dir) => {
                std::fs::create_dir_all(dir).map_err(|source| StorageError::CreateDir { path: dir.display().to_string(), source })?;
                let root = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
                (Arc::new(LocalFileSystem::new_with_prefix(&root)?), Place::Local(root))
            }
            ExportTarget::S3(settings) => (s3(settings)?, Place::S3 { bucket: settings.bucket.clone() }),
        };
        Ok(ExportStore { store, place, prefix: prefix.to_string() })
    }

    /// The key of file `name` under the prefix; `name` must be one segment.
    fn key(&self, name: &str) -> Result<String, StorageError> {
        check_segment(name).map_err(|reason| StorageError::BadKey { key: name.to_string(), reason })?;
        Ok(if self.prefix.is_empty() { name.to_string() } else { format!("{}/{name}", self.prefix) })
    }

    /// The file name a key names, if it is directly under the prefix.
    fn name_in<'k>(&self, key: &'k str) -> Result<&'k str, StorageError> {
        let bad = |reason| StorageError::BadKey { key: key.to_string(), reason };
        let name = if self.prefix.is_empty() {
            key
        } else {
            key.strip_prefix(self.prefix.as_str())
                .and_then(|rest| rest.strip_prefix('/'))
                .ok_or_else(|| bad(KeyError::OutsidePrefix(self.prefix.clone())))?
        };
        check_segment(name).map_err(bad)?;
        Ok(name)
    }

    fn path(key: &str) -> Result<ObjectPath, StorageError> {
        // Every segment was checked already; object_store checks again.
        ObjectPath::parse(key).map_err(|_| StorageError::BadKey { key: key.to_string(), reason: KeyError::Empty })
    }

    /// Stores `bytes` as file `name` (one segment, under the prefix),
    /// replacing any object there.
    pub async fn put(&self, name: &str, bytes: Vec<u8>) -> Result<StoredObject, StorageError> {
        let key = self.key(name)?;
        let size_bytes = bytes.len() as u64;
        self.store.put_opts(&Self::path(&key)?, PutPayload::from(bytes), PutOptions::default()).await?;
        let location = match &self.place {
            Place::Local(root) => format!("file://{}", root.join(&key).display()),
            Place::S3 { bucket } => format!("s3://{bucket}/{key}"),
        };
        Ok(StoredObject { location, key, size_bytes })
    }

    /// Reads an object back by the key [`ExportStore::put`] returned; any
    /// other key (outside the prefix, in a sub-folder, with a traversal) is
    /// refused before the storage is asked.
    pub async fn get(&self, key: &str) -> Result<Vec<u8>, StorageError> {
        let name = self.name_in(key)?;
        let got = self.store.get_opts(&Self::path(&self.key(name)?)?, Default::default()).await?;
        Ok(got.bytes().await?.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_plain_names() {
        for ok in ["a.pdf", "strategy-01HX.pdf", "q2-note.pdf", "a..b.pdf", ".hidden"] {
            assert_eq!(check_segment(ok), Ok(()), "{ok}");
        }
        assert_eq!(check_segment(".."), Err(KeyError::Dots("..".into())));
        assert_eq!(check_segment("."), Err(KeyError::Dots(".".into())));
        assert_eq!(check_segment("..."), Err(KeyError::Dots("...".into())));
        assert_eq!(check_segment(""), Err(KeyError::Empty));
        assert_eq!(check_segment("a/b"), Err(KeyError::Character('/')));
        assert_eq!(check_segment("..\\x"), Err(KeyError::Character('\\')));
        assert_eq!(check_segment("%2e%2e"), Err(KeyError::Character('%')));
        assert_eq!(check_segment("a\0b"), Err(KeyError::Character('\0')));
        assert_eq!(check_segment(&"a".repeat(MAX_SEGMENT_BYTES + 1)), Err(KeyError::TooLong));
        assert_eq!(check_prefix("advert-01/pdf"), Ok(()));
        assert_eq!(check_prefix(""), Ok(()));
        assert!(check_prefix("a/../b").is_err());
        assert!(check_prefix("a//b").is_err());
    }

    #[tokio::test]
    async fn keys_stay_under_the_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let store = ExportStore::new(&ExportTarget::Local(dir.path().join("exports")), "pdf").unwrap();
        let put = store.put("a.pdf", b"%PDF-1".to_vec()).await.unwrap();
        assert_eq!(put.key, "pdf/a.pdf");
        assert_eq!(store.get("pdf/a.pdf").await.unwrap(), b"%PDF-1");
        for bad in ["a.pdf", "pdf/../pdf/a.pdf", "pdf//a.pdf", "/pdf/a.pdf", "pdf/sub/a.pdf", "pdfx/a.pdf", "pdf/..", "pdf/%2e%2e"] {
            assert!(matches!(store.get(bad).await, Err(StorageError::BadKey { .. })), "{bad}");
        }
        for bad in ["../a.pdf", "x/a.pdf", "..", "a\\b.pdf"] {
            assert!(matches!(store.put(bad, vec![1]).await, Err(StorageError::BadKey { .. })), "{bad}");
        }
        assert!(matches!(ExportStore::new(&ExportTarget::Local(dir.path().into()), "../up"), Err(StorageError::BadKey { .. })));
    }
}
