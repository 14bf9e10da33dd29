//! Reading and writing NumPy `.npy` files (format versions 1.0–3.0) holding 2-D `f32`/`f64`
//! arrays, with errors that say what is wrong with the file instead of panicking.
//!
//! Supported on read: little- or big-endian `f4`/`f8`, C or Fortran order, exactly two
//! dimensions. Written: version 1.0, little-endian `f8`, C order — what `numpy.load` expects.

use ndarray::{Array2, ArrayView2, ShapeBuilder};
use std::fs;
use std::path::{Path, PathBuf};
use thiserror::Error;

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Errors from reading or writing `.npy` files; each names the file.
#[derive(Debug, Error)]
pub enum NpyError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not a valid `.npy` file or holds something unsupported.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Result alias of this module.
pub type Result<T> = std::result::Result<T, NpyError>;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Dtype {
    F32,
    F64,
}

#[derive(Debug)]
struct Header {
    dtype: Dtype,
    little_endian: bool,
    fortran: bool,
    shape: Vec<usize>,
}

/// Reads a 2-D `f32` or `f64` array from `path` (converted to `f64`).
///
/// # Errors
/// A missing or unreadable file, a bad magic string, a malformed header, a dtype other than
/// `f4`/`f8`, a number of dimensions other than 2, or a data section of the wrong length.
pub fn read_f64_2d(path: impl AsRef<Path>) -> Result<Array2<f64>> {
    let path = path.as_ref();
    let bytes = fs::read(path).map_err(|source| NpyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_f64_2d(&bytes).map_err(|reason| NpyError::Format {
        path: path.to_path_buf(),
        reason,
    })
}

/// Parses the bytes of a `.npy` file holding a 2-D `f32`/`f64` array.
///
/// # Errors
/// A description of what is malformed or unsupported.
pub fn parse_f64_2d(bytes: &[u8]) -> std::result::Result<Array2<f64>, String> {
    let (header, data) = split_header(bytes)?;
    if header.shape.len() != 2 {
        return Err(format!(
            "expected a 2-D array, found {} dimension(s) with shape {:?}",
            header.shape.len(),
            header.shape
        ));
    }
    let (rows, cols) = (header.shape[0], header.shape[1]);
    let item = match header.dtype {
        Dtype::F32 => 4,
        Dtype::F64 => 8,
    };
    let expected = rows
        .checked_mul(cols)
        .and_then(|n| n.checked_mul(item))
        .ok_or_else(|| format!("shape {:?} is too large", header.shape))?;
    if data.len() != expected {
        return Err(format!(
            "data section has {} bytes but shape ({rows}, {cols}) of {} needs {expected} (truncated or corrupt file)",
            data.len(),
            if item == 4 { "float32" } else { "float64" },
        ));
    }
    let values: Vec<f64> = match header.dtype {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|c| {
                let b = [c[0], c[1], c[2], c[3]];
                f64::from(if header.little_endian {
                    f32::from_le_bytes(b)
                } else {
                    f32::from_be_bytes(b)
                })
            })
            .collect(),
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|c| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                if header.little_endian {
                    f64::from_le_bytes(b)
                } else {
                    f64::from_be_bytes(b)
                }
            })
            .collect(),
    };
    let shape = (rows, cols);
    let arr = if header.fortran {
        Array2::from_shape_vec(shape.f(), values)
    } else {
        Array2::from_shape_vec(shape, values)
    }
    .map_err(|e| e.to_string())?;
    Ok(arr.as_standard_layout().into_owned())
}

fn split_header(bytes: &[u8]) -> std::result::Result<(Header, &[u8]), String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("not a .npy file (missing the \\x93NUMPY magic string)".into());
    }
    let major = bytes[6];
    let (len, start): (usize, usize) = match major {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err("truncated header".into());
            }
            let l = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
            (l as usize, 12)
        }
        v => return Err(format!("unsupported .npy format version {v}")),
    };
    let end = start
        .checked_add(len)
        .filter(|&e| e <= bytes.len())
        .ok_or("truncated header")?;
    let text = std::str::from_utf8(&bytes[start..end]).map_err(|_| "header is not valid text")?;
    Ok((parse_header(text)?, &bytes[end..]))
}

/// Parses the Python-literal header dict, e.g.
/// `{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }`.
fn parse_header(text: &str) -> std::result::Result<Header, String> {
    let t = text.trim();
    let inner = t
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .ok_or("header is not a dictionary")?;
    let descr = dict_value(inner, "descr")?;
    let descr = descr
        .trim()
        .trim_matches(|c| c == '\'' || c == '"')
        .to_string();
    let (little_endian, dtype) = match descr.as_str() {
        "<f8" | "=f8" | "|f8" => (
            cfg!(target_endian = "little") || descr.starts_with('<'),
            Dtype::F64,
        ),
        ">f8" => (false, Dtype::F64),
        "<f4" | "=f4" | "|f4" => (
            cfg!(target_endian = "little") || descr.starts_with('<'),
            Dtype::F32,
        ),
        ">f4" => (false, Dtype::F32),
        other => {
            return Err(format!(
                "unsupported dtype '{other}': expected float32 or float64"
            ))
        }
    };
    let fortran = match dict_value(inner, "fortran_order")?.trim() {
        "False" => false,
        "True" => true,
        other => return Err(format!("bad fortran_order value '{other}'")),
    };
    let shape_text = dict_value(inner, "shape")?;
    let shape_inner = shape_text
        .trim()
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or("shape is not a tuple")?;
    let shape = shape_inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.trim_end_matches('L')
                .parse::<usize>()
                .map_err(|_| format!("bad shape entry '{s}'"))
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(Header {
        dtype,
        little_endian,
        fortran,
        shape,
    })
}

/// The raw text of the value of `key` in a flat Python dict literal body.
fn dict_value<'a>(inner: &'a str, key: &str) -> std::result::Result<&'a str, String> {
    let missing = || format!("header has no '{key}' entry");
    let pos = inner
        .find(&format!("'{key}'"))
        .or_else(|| inner.find(&format!("\"{key}\"")))
        .ok_or_else(missing)?;
    let rest = &inner[pos + key.len() + 2..];
    let rest = rest.trim_start().strip_prefix(':').ok_or_else(missing)?;
    let rest = rest.trim_start();
    // A value ends at the first top-level comma (tuples are parenthesised).
    let mut depth = 0i32;
    for (i, ch) in rest.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => return Ok(&rest[..i]),
            _ => {}
        }
    }
    Ok(rest)
}

/// Serialises a 2-D `f64` array as `.npy` (version 1.0, `<f8`, C order).
pub fn to_bytes(a: ArrayView2<'_, f64>) -> Vec<u8> {
    let dict = format!(
        "{{'descr': '<f8', 'fortran_order': False, 'shape': ({}, {}), }}",
        a.nrows(),
        a.ncols()
    );
    // Pad with spaces so that magic + version + length + header is a multiple of 64, ending in '\n'.
    let unpadded = MAGIC.len() + 2 + 2 + dict.len() + 1;
    let pad = (64 - unpadded % 64) % 64;
    let header = format!("{dict}{}\n", " ".repeat(pad));
    let mut out = Vec::with_capacity(10 + header.len() + 8 * a.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(
        &u16::try_from(header.len())
            .unwrap_or(u16::MAX)
            .to_le_bytes(),
    );
    out.extend_from_slice(header.as_bytes());
    for v in a.iter() {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Writes `a` to `path` atomically (temporary file in the same folder, fsync, rename).
///
/// # Errors
/// If the file cannot be written.
pub fn write_f64_2d(path: impl AsRef<Path>, a: ArrayView2<'_, f64>) -> Result<()> {
    let path = path.as_ref();
    crate::io::write_atomic(path, &to_bytes(a)).map_err(|source| NpyError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn round_trip() {
        let a = array![[1.0, -2.5, 3.0], [4.0, f64::MIN_POSITIVE, 1e300]];
        let b = parse_f64_2d(&to_bytes(a.view())).unwrap();
        assert_eq!(a, b);
        assert_eq!(to_bytes(a.view())[8..10], [118, 0]); // header length 118 → 128-byte prefix
    }

    #[test]
    fn rejects_bad_files_with_reasons() {
        let a = array![[1.0, 2.0], [3.0, 4.0]];
        let good = to_bytes(a.view());
        assert!(parse_f64_2d(b"hello").unwrap_err().contains("magic"));
        assert!(parse_f64_2d(&good[..good.len() - 3])
            .unwrap_err()
            .contains("truncated"));
        assert!(parse_f64_2d(&good[..20])
            .unwrap_err()
            .contains("truncated header"));
        let pos = good.windows(3).position(|w| w == b"<f8").unwrap();
        let mut int = good.clone();
        int[pos + 1] = b'i';
        assert!(parse_f64_2d(&int).unwrap_err().contains("dtype"));
    }

    #[test]
    fn reads_f32_fortran_and_big_endian() {
        let mut bytes = Vec::new();
        let header = "{'descr': '>f4', 'fortran_order': True, 'shape': (2, 3), }\n";
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&[1, 0]);
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        // Column-major data of [[1,2,3],[4,5,6]]
        for v in [1.0f32, 4.0, 2.0, 5.0, 3.0, 6.0] {
            bytes.extend_from_slice(&v.to_be_bytes());
        }
        let a = parse_f64_2d(&bytes).unwrap();
        assert_eq!(a, array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]);
    }

    #[test]
    fn rejects_wrong_rank() {
        let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }\n";
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[1, 0]);
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&[0u8; 24]);
        assert!(parse_f64_2d(&bytes).unwrap_err().contains("2-D"));
    }
}
