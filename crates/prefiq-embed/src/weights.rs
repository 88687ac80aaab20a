//! Tensors out of a safetensors file, checked for dtype and shape.

use safetensors::{Dtype, SafeTensors};

use crate::EmbedError;

/// A parsed safetensors buffer, with the model's name for error messages.
pub(crate) struct Weights<'a> {
    model: &'a str,
    tensors: SafeTensors<'a>,
}

impl<'a> Weights<'a> {
    /// Parses the header; the data stays borrowed from `bytes`.
    pub(crate) fn parse(model: &'a str, bytes: &'a [u8]) -> Result<Self, EmbedError> {
        let tensors = SafeTensors::deserialize(bytes).map_err(|e| {
            EmbedError::invalid(model, format!("not a readable safetensors file: {e}"))
        })?;
        Ok(Self { model, tensors })
    }

    /// Whether a tensor of this name exists.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.tensors.names().contains(&name)
    }

    /// The dtype and shape of tensor `name`.
    pub(crate) fn info(&self, name: &str) -> Result<(Dtype, Vec<usize>), EmbedError> {
        let view = self
            .tensors
            .tensor(name)
            .map_err(|e| EmbedError::invalid(self.model, format!("tensor {name}: {e}")))?;
        Ok((view.dtype(), view.shape().to_vec()))
    }

    /// The raw little-endian bytes of `name`, which must have `dtype` and `shape`.
    pub(crate) fn raw(
        &self,
        name: &str,
        dtype: Dtype,
        shape: &[usize],
    ) -> Result<&'a [u8], EmbedError> {
        let view = self
            .tensors
            .tensor(name)
            .map_err(|e| EmbedError::invalid(self.model, format!("tensor {name}: {e}")))?;
        if view.dtype() != dtype {
            return Err(EmbedError::invalid(
                self.model,
                format!("tensor {name} is {:?}, expected {dtype:?}", view.dtype()),
            ));
        }
        if view.shape() != shape {
            return Err(EmbedError::invalid(
                self.model,
                format!(
                    "tensor {name} has shape {:?}, expected {shape:?}",
                    view.shape()
                ),
            ));
        }
        Ok(view.data())
    }

    /// An f32 tensor of the given shape, copied out row-major.
    pub(crate) fn f32(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, EmbedError> {
        let bytes = self.raw(name, Dtype::F32, shape)?;
        if cfg!(target_endian = "little") {
            // A plain copy (the data need not be aligned): fast even unoptimised.
            Ok(bytemuck::pod_collect_to_vec(bytes))
        } else {
            Ok(bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect())
        }
    }
}
