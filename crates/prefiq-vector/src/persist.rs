//! The on-disk copy of an index: a header, the key table, usearch's own serialisation.
//!
//! ```text
//! offset  size  field
//!      0     8  magic "PQVECIX\0"
//!      8     4  format version (1)
//!     12     1  storage (0 f32, 1 f16, 2 i8), then 3 zero bytes
//!     16     4  dims
//!     20     4  connectivity
//!     24     4  expansion_add
//!     28     4  expansion_search
//!     32     8  len (keys present)
//!     40     8  stamp (the caller's, opaque)
//!     48     8  length of usearch's part
//!     56     4  CRC-32 of bytes 0..56 and everything after the header
//!     60     4  zero
//!     64  8×len keys
//!      …        usearch's serialisation
//! ```
//!
//! Little-endian throughout. The file is written under a temporary name beside the target,
//! synced, then renamed over it, so a reader sees the old file or the new one, never half.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use usearch::Index;

use crate::index::{Native, VectorIndex, native_options, search_contexts};
use crate::{IndexError, IndexOptions, Storage, usearch_error};

const MAGIC: &[u8; 8] = b"PQVECIX\0";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
const HEADER: usize = 64;

fn storage_code(storage: Storage) -> u8 {
    match storage {
        Storage::F32 => 0,
        Storage::F16 => 1,
        Storage::I8 => 2,
    }
}

fn storage_of(code: u8) -> Option<Storage> {
    match code {
        0 => Some(Storage::F32),
        1 => Some(Storage::F16),
        2 => Some(Storage::I8),
        _ => None,
    }
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

fn checksum(header: &[u8], body: &[&[u8]]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header[..56]);
    for part in body {
        hasher.update(part);
    }
    hasher.finalize()
}

fn temporary_beside(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map_or_else(|| "index".into(), |n| n.to_string_lossy().into_owned());
    let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.tmp.{}.{unique}", std::process::id()))
}

fn as_u32(value: usize, what: &str) -> Result<u32, IndexError> {
    u32::try_from(value).map_err(|_| IndexError::InvalidOptions(format!("{what} too large")))
}

impl VectorIndex {
    /// Writes the index atomically (temporary file beside `path`, synced, renamed over it)
    /// with a header holding the format version, the options, the length and the caller's
    /// `stamp`, so a reader can tell a stale or foreign file. Insertions wait while it runs;
    /// searches do not.
    pub fn save(&self, path: &Path, stamp: u64) -> Result<(), IndexError> {
        let native = self.read();
        let mut blob = vec![0u8; native.index.serialized_length()];
        native
            .index
            .save_to_buffer(&mut blob)
            .map_err(usearch_error)?;
        let keys: Vec<u8> = native.keys.iter().flat_map(|k| k.to_le_bytes()).collect();
        let len = native.keys.len() as u64;
        drop(native);

        let options = &self.options;
        let mut header = [0u8; HEADER];
        header[..8].copy_from_slice(MAGIC);
        header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        header[12] = storage_code(options.storage);
        header[16..20].copy_from_slice(&as_u32(options.dims, "dims")?.to_le_bytes());
        let connectivity = as_u32(options.connectivity, "connectivity")?;
        header[20..24].copy_from_slice(&connectivity.to_le_bytes());
        let expansion_add = as_u32(options.expansion_add, "expansion_add")?;
        header[24..28].copy_from_slice(&expansion_add.to_le_bytes());
        let expansion_search = as_u32(options.expansion_search, "expansion_search")?;
        header[28..32].copy_from_slice(&expansion_search.to_le_bytes());
        header[32..40].copy_from_slice(&len.to_le_bytes());
        header[40..48].copy_from_slice(&stamp.to_le_bytes());
        header[48..56].copy_from_slice(&(blob.len() as u64).to_le_bytes());
        let crc = checksum(&header, &[&keys, &blob]);
        header[56..60].copy_from_slice(&crc.to_le_bytes());

        let temporary = temporary_beside(path);
        let written = (|| -> std::io::Result<()> {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&temporary)?;
            file.write_all(&header)?;
            file.write_all(&keys)?;
            file.write_all(&blob)?;
            file.sync_all()?;
            std::fs::rename(&temporary, path)
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temporary);
            return Err(e.into());
        }
        // Make the rename itself durable; a directory that cannot be opened or synced
        // (some file systems) leaves the file written all the same.
        if let Some(directory) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            let _ = File::open(directory).and_then(|d| d.sync_all());
        }
        Ok(())
    }

    /// Reads a saved index; returns it with its stamp. A corrupt, truncated, other-version or
    /// other-dims (or other storage or connectivity) file is an error, never a panic: the
    /// caller then rebuilds. The expansions are taken from `options`, not the file.
    pub fn load(path: &Path, options: IndexOptions) -> Result<(Self, u64), IndexError> {
        options.validate()?;
        let bytes = std::fs::read(path)?;
        let corrupt = |what: &str| IndexError::Corrupt(format!("{}: {what}", path.display()));
        if bytes.len() < HEADER {
            return Err(corrupt("shorter than the header"));
        }
        if &bytes[..8] != MAGIC {
            return Err(corrupt("not an index file"));
        }
        let version = u32_at(&bytes, 8);
        if version != FORMAT_VERSION {
            return Err(IndexError::UnsupportedVersion {
                found: version,
                expected: FORMAT_VERSION,
            });
        }
        let len = u64_at(&bytes, 32);
        let stamp = u64_at(&bytes, 40);
        let blob_len = u64_at(&bytes, 48);
        let expected = len
            .checked_mul(8)
            .and_then(|k| k.checked_add(blob_len))
            .and_then(|b| b.checked_add(HEADER as u64));
        if expected != Some(bytes.len() as u64) {
            return Err(corrupt("truncated or of the wrong length"));
        }
        let keys_end = HEADER + len as usize * 8;
        let (keys, blob) = (&bytes[HEADER..keys_end], &bytes[keys_end..]);
        if checksum(&bytes[..HEADER], &[keys, blob]) != u32_at(&bytes, 56) {
            return Err(corrupt("checksum mismatch"));
        }
        let storage = storage_of(bytes[12]).ok_or_else(|| corrupt("unknown storage"))?;
        let dims = u32_at(&bytes, 16) as usize;
        let connectivity = u32_at(&bytes, 20) as usize;
        if dims != options.dims {
            return Err(IndexError::Incompatible(format!(
                "{dims} dims in the file, {} wanted",
                options.dims
            )));
        }
        if storage != options.storage {
            return Err(IndexError::Incompatible(format!(
                "{storage:?} storage in the file, {:?} wanted",
                options.storage
            )));
        }
        if connectivity != options.connectivity {
            return Err(IndexError::Incompatible(format!(
                "connectivity {connectivity} in the file, {} wanted",
                options.connectivity
            )));
        }

        let metadata = Index::metadata_from_buffer(blob).map_err(usearch_error)?;
        let major = usearch::version()
            .split('.')
            .next()
            .and_then(|v| v.parse::<u16>().ok());
        if major != Some(metadata.version_major) {
            return Err(IndexError::Incompatible(format!(
                "written by usearch {}.{}, this build has {}",
                metadata.version_major,
                metadata.version_minor,
                usearch::version()
            )));
        }
        if metadata.dimensions != dims as u64 || metadata.count_present != len || metadata.multi {
            return Err(corrupt("usearch's header disagrees with ours"));
        }
        let index = Index::new(&native_options(&options)).map_err(usearch_error)?;
        index.load_from_buffer(blob).map_err(usearch_error)?;
        index.change_expansion_add(options.expansion_add);
        index.change_expansion_search(options.expansion_search);
        if index.size() as u64 != len || index.dimensions() != dims {
            return Err(corrupt("usearch's part disagrees with the header"));
        }
        let contexts = search_contexts();
        let tombstones = metadata.count_deleted as usize;
        let capacity = index.capacity().max(len as usize + tombstones + 1);
        index
            .reserve_capacity_and_threads(capacity, contexts)
            .map_err(usearch_error)?;

        let keys: Vec<u64> = keys.chunks_exact(8).map(|k| u64_at(k, 0)).collect();
        let mut positions = HashMap::with_capacity(keys.len());
        for (position, &key) in keys.iter().enumerate() {
            if positions.insert(key, position).is_some() || !index.contains(key) {
                return Err(corrupt("key table disagrees with usearch's part"));
            }
        }
        let native = Native {
            index,
            keys,
            positions,
            tombstones,
        };
        Ok((Self::from_parts(options, native, contexts), stamp))
    }
}
