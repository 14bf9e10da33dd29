//! safetensors encoding of named f32 tensors.

use crate::params::NamedTensor;
use clica_core::{Error, Result};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::{BTreeMap, HashMap};

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
    let mut out = safetensors::serialize(views, Some(metadata.clone()))
        .map_err(|e| Error::Numerical(format!("safetensors serialisation failed: {e}")))?;
    sort_metadata(&mut out, &metadata);
    Ok(out)
}

/// safetensors writes the `__metadata__` map in `HashMap` order, which differs from process
/// to process; this rewrites it with sorted keys, so that equal contents give equal bytes.
/// The sorted map has the same entries and escaping, hence the same length: nothing else in
/// the file moves.
fn sort_metadata(bytes: &mut [u8], metadata: &HashMap<String, String>) {
    const PREFIX: &[u8] = b"{\"__metadata__\":";
    let sorted: BTreeMap<&String, &String> = metadata.iter().collect();
    let Ok(json) = serde_json::to_string(&sorted) else {
        return;
    };
    let start = 8 + PREFIX.len();
    let end = start + json.len();
    if bytes.len() < end || &bytes[8..start] != PREFIX {
        return;
    }
    let written: Option<BTreeMap<String, String>> = serde_json::from_slice(&bytes[start..end]).ok();
    let same = written.is_some_and(|w| {
        w.len() == sorted.len()
            && w.iter()
                .zip(&sorted)
                .all(|(a, b)| (a.0, a.1) == (*b.0, *b.1))
    });
    if same {
        bytes[start..end].copy_from_slice(json.as_bytes());
    }
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

/// Parses safetensors bytes and hands the tensors to `set` (an encoder's
/// `set_parameters`); a shape mismatch names the architecture the file was saved from when
/// its metadata records one (`clica.architecture`).
///
/// # Errors
/// As [`deserialize`], and `set`'s own errors.
pub(crate) fn load(bytes: &[u8], set: impl FnOnce(&[NamedTensor]) -> Result<()>) -> Result<()> {
    let (tensors, meta) = deserialize(bytes)?;
    set(&tensors).map_err(|e| match (e, meta.get("clica.architecture")) {
        (Error::Shape(msg), Some(arch)) => {
            Error::Shape(format!("{msg} (the file was saved from `{arch}`)"))
        }
        (e, _) => e,
    })
}
