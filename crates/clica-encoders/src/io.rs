//! safetensors encoding of named f32 tensors.

use crate::params::NamedTensor;
use clica_core::{Error, Result};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;

fn malformed(reason: impl std::fmt::Display) -> Error {
    Error::param(
        "safetensors",
        format!("malformed safetensors data: {reason}"),
    )
}

/// Serialises `tensors` (all f32, little-endian) with string `metadata` in the header.
pub(crate) fn serialize(
    tensors: &[NamedTensor],
    metadata: HashMap<String, String>,
) -> Result<Vec<u8>> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|t| t.data.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|(t, b)| {
            TensorView::new(Dtype::F32, t.shape.clone(), b)
                .map(|v| (t.name.clone(), v))
                .map_err(|e| Error::Shape(format!("tensor `{}`: {e}", t.name)))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, Some(metadata))
        .map_err(|e| Error::Numerical(format!("safetensors serialisation failed: {e}")))
}

/// Parses safetensors bytes into f32 tensors (in file order) and the header metadata.
///
/// # Errors
/// [`Error::InvalidParameter`] (`safetensors`) if the bytes are not a valid safetensors
/// file or a tensor is not f32.
pub(crate) fn deserialize(bytes: &[u8]) -> Result<(Vec<NamedTensor>, HashMap<String, String>)> {
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(malformed)?;
    let st = SafeTensors::deserialize(bytes).map_err(malformed)?;
    let mut out = Vec::with_capacity(st.len());
    for (name, view) in st.iter() {
        if view.dtype() != Dtype::F32 {
            return Err(Error::param(
                "safetensors",
                format!("tensor `{name}` has dtype {:?}, expected F32", view.dtype()),
            ));
        }
        let data = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.push(NamedTensor {
            name: name.to_string(),
            shape: view.shape().to_vec(),
            data,
        });
    }
    Ok((out, meta.metadata().clone().unwrap_or_default()))
}
