//! Reading the registry (`plugins.registry`: a folder, or an http(s) URL of a folder) and
//! installing from it: the index names the file and its digest; the download is checked
//! against the digest before it is opened, then installed like any package (its
//! signature against this installation's trusted keys), and its signer must be one of the
//! keys the index lists for its publisher.

use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use prefiq_plugin::package::{self, MAX_PACKAGE_BYTES};
use prefiq_plugin::registry::{MAX_INDEX_BYTES, Pick, RegistryIndex};

use crate::PluginsError;

/// The index's file name in the registry folder.
pub const INDEX_FILE: &str = "index.json";

/// How long a registry download may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the registry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registry {
    /// A folder holding `index.json` and the package files.
    Folder(PathBuf),
    /// The URL of such a folder (ending in `/`).
    Url(String),
}

impl Registry {
    /// The registry `location` names: an `http(s)://` URL, or a folder (relative to
    /// `root`).
    pub fn at(location: &str, root: &Path) -> Registry {
        if location.starts_with("https://") || location.starts_with("http://") {
            let mut url = location.to_owned();
            if !url.ends_with('/') {
                url.push('/');
            }
            Registry::Url(url)
        } else {
            let path = Path::new(location);
            Registry::Folder(if path.is_absolute() {
                path.to_path_buf()
            } else {
                root.join(path)
            })
        }
    }

    async fn fetch(&self, file: &str, limit: usize) -> Result<Vec<u8>, PluginsError> {
        let unavailable = |e: String| PluginsError::Invalid(format!("the registry: {file}: {e}"));
        match self {
            Registry::Folder(dir) => {
                let path = dir.join(file);
                let size = tokio::fs::metadata(&path)
                    .await
                    .map_err(|e| unavailable(e.to_string()))?
                    .len();
                if size > limit as u64 {
                    return Err(unavailable(format!("{size} bytes; at most {limit}")));
                }
                tokio::fs::read(&path)
                    .await
                    .map_err(|e| unavailable(e.to_string()))
            }
            Registry::Url(base) => {
                let url = format!("{base}{file}");
                let uri: hyper::Uri = url
                    .parse()
                    .map_err(|e: hyper::http::uri::InvalidUri| unavailable(e.to_string()))?;
                let mut http = HttpConnector::new();
                http.enforce_http(false);
                http.set_connect_timeout(Some(Duration::from_secs(10)));
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_webpki_roots()
                    .https_or_http()
                    .enable_http1()
                    .wrap_connector(http);
                let client: Client<_, Empty<Bytes>> =
                    Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector);
                let response = tokio::time::timeout(FETCH_TIMEOUT, client.get(uri))
                    .await
                    .map_err(|_| unavailable("no answer in time".into()))?
                    .map_err(|e| unavailable(e.to_string()))?;
                if !response.status().is_success() {
                    return Err(unavailable(format!("HTTP {}", response.status())));
                }
                let body = tokio::time::timeout(
                    FETCH_TIMEOUT,
                    Limited::new(response.into_body(), limit).collect(),
                )
                .await
                .map_err(|_| unavailable("the download took too long".into()))?
                .map_err(|e| unavailable(format!("{e} (at most {limit} bytes)")))?;
                Ok(body.to_bytes().to_vec())
            }
        }
    }

    /// Reads the index.
    pub async fn index(&self) -> Result<RegistryIndex, PluginsError> {
        let bytes = self.fetch(INDEX_FILE, MAX_INDEX_BYTES).await?;
        RegistryIndex::parse(&bytes).map_err(|e| PluginsError::Invalid(e.to_string()))
    }

    /// Downloads the package `spec` (`NAME` or `NAME@VERSION`) names and checks it
    /// against the index: its digest, then its signer. Answers the verified bytes.
    pub async fn download(&self, spec: &str) -> Result<(Pick, Vec<u8>), PluginsError> {
        let index = self.index().await?;
        let pick = index
            .pick(spec)
            .map_err(|e| PluginsError::NotFound(e.to_string()))?;
        let limit = usize::try_from(MAX_PACKAGE_BYTES).unwrap_or(usize::MAX);
        let bytes = self.fetch(&pick.release.file, limit).await?;
        pick.check_digest(&bytes)
            .map_err(|e| PluginsError::Invalid(e.to_string()))?;
        // Only the signature block is read here; the installation verifies the whole
        // package against its own trusted keys next.
        let opened = package::open(
            &bytes,
            &package::TrustPolicy {
                keys: pick.keys.clone(),
                allow_unsigned: false,
            },
        )
        .map_err(|e| {
            PluginsError::Invalid(format!(
                "{}, checked against its publisher's keys in the registry: {e}",
                pick.release.file
            ))
        })?;
        pick.check_signer(opened.signer.as_ref())
            .map_err(|e| PluginsError::Invalid(e.to_string()))?;
        if opened.manifest.name != pick.name || opened.manifest.version != pick.version {
            return Err(PluginsError::Invalid(format!(
                "{}: the registry lists {} {}, the package is {} {}",
                pick.release.file,
                pick.name,
                pick.version,
                opened.manifest.name,
                opened.manifest.version
            )));
        }
        Ok((pick, bytes))
    }
}
