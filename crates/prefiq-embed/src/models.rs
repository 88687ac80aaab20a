//! The models by name: the built-in one, and those installed in a models directory.

use std::path::Path;
use std::sync::Arc;

use crate::install::INSTALL_COMMAND;
use crate::minilm::{MINILM_ID, MiniLm};
use crate::static_model::{STATIC_MINILM_ID, StaticModel};
use crate::{EmbedError, Embedder};

/// The files a model directory must have for `load` to try it.
const MINILM_FILES: [&str; 3] = ["config.json", "model.safetensors", "tokenizer.json"];

/// The in-tree static model, `static-minilm-256` (256 dims), always there.
pub fn builtin() -> Result<Arc<dyn Embedder>, EmbedError> {
    Ok(StaticModel::builtin()?)
}

/// The model called `name`: `static-minilm-256` is the built-in one; `all-minilm-l6-v2`
/// is loaded from `models_dir/all-minilm-l6-v2/` (absent, it is
/// [`EmbedError::NotInstalled`], naming the command that installs it). Loading MiniLM
/// reads 87 MiB of weights: keep the model rather than loading it per request.
pub fn load(models_dir: &Path, name: &str) -> Result<Arc<dyn Embedder>, EmbedError> {
    match name {
        STATIC_MINILM_ID => builtin(),
        MINILM_ID => {
            let dir = models_dir.join(MINILM_ID);
            if !MINILM_FILES.iter().all(|f| dir.join(f).is_file()) {
                return Err(EmbedError::NotInstalled {
                    name: MINILM_ID.to_owned(),
                    path: dir,
                    command: INSTALL_COMMAND.to_owned(),
                });
            }
            Ok(Arc::new(MiniLm::load(&dir)?))
        }
        _ => Err(EmbedError::UnknownModel {
            name: name.to_owned(),
            available: vec![STATIC_MINILM_ID.to_owned(), MINILM_ID.to_owned()],
        }),
    }
}

/// The models installed in `models_dir` (not the built-in one, which needs no install):
/// those whose directory has the files `load` needs.
pub fn installed(models_dir: &Path) -> Vec<String> {
    let dir = models_dir.join(MINILM_ID);
    if MINILM_FILES.iter().all(|f| dir.join(f).is_file()) {
        vec![MINILM_ID.to_owned()]
    } else {
        Vec::new()
    }
}
