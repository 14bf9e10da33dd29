//! Applying a trained encoder to new observations.
//!
//! A finished run folder holds everything its encoder needs: `config.toml` names the
//! architecture and the seed (from which the input normalisation is drawn, as in training)
//! and `encoder.safetensors` the trained weights (their moving average when the run kept
//! one). [`TrainedEncoder::load`] rebuilds the encoder from both and checks that the
//! configuration still builds the run's data-generating process (the
//! `generator_fingerprint` of its `[run]` table), so what it encodes is what the run's
//! scores describe. `clica encode` is the command-line face of it.

use crate::config::TrainConfig;
use crate::imageset::ImageSet;
use crate::train::Setup;
use crate::{Error, Result};
use clica_core::TrainableEncoder;
use ndarray::{Array2, ArrayView2, Axis, Slice};
use std::path::{Path, PathBuf};

/// The encoder of a finished run, ready to encode.
pub struct TrainedEncoder {
    encoder: Box<dyn TrainableEncoder>,
    dir: PathBuf,
    fingerprint: String,
}

impl std::fmt::Debug for TrainedEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrainedEncoder")
            .field("dir", &self.dir)
            .field("encoder", &self.encoder.describe())
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

fn data_err(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::Data(format!("{}: {what}", path.display()))
}

impl TrainedEncoder {
    /// Rebuilds the encoder of the run in `dir` (its `config.toml` and `encoder.safetensors`).
    /// The run's data source is rebuilt too (its fingerprint is checked, and the input
    /// normalisation is drawn from it): cheap for the latent pipeline and the renderer, a
    /// second read of the whole set for a run on an image set (`data.kind = "image_set"`).
    ///
    /// # Errors
    /// [`Error::Data`] naming the file when `dir` is not a finished run folder (no
    /// `config.toml`, or no `encoder.safetensors`: the run has not finished its contrastive
    /// phase), when the configuration no longer builds the run's generator (another clica
    /// version), or when the weights do not fit the architecture; the configuration's own
    /// errors.
    pub fn load(dir: &Path) -> Result<Self> {
        let cfg_path = dir.join("config.toml");
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| {
            data_err(
                &cfg_path,
                format!(
                    "{e} (is {} a folder written by `clica train`?)",
                    dir.display()
                ),
            )
        })?;
        let recorded = recorded_fingerprint(&text)
            .ok_or_else(|| data_err(&cfg_path, "no [run] table with a generator_fingerprint"))?;
        let config = TrainConfig::from_run_config(&text)
            .map_err(|e| data_err(&cfg_path, format!("not a valid run configuration: {e}")))?;
        let weights_path = dir.join("encoder.safetensors");
        let bytes = std::fs::read(&weights_path).map_err(|e| {
            data_err(
                &weights_path,
                format!(
                    "{e} (the run writes its encoder when the contrastive phase ends; continue an unfinished run with `clica train --resume {}`)",
                    dir.display()
                ),
            )
        })?;
        let setup = Setup::new(&config)?;
        let fingerprint = setup.fingerprint();
        if fingerprint != recorded {
            return Err(data_err(
                &cfg_path,
                format!(
                    "the run was trained on generator {recorded}, but its configuration now builds generator {fingerprint} (another clica version?); its encoder's input normalisation cannot be rebuilt"
                ),
            ));
        }
        // Initial weights are drawn and then replaced: any stream will do.
        let mut encoder = setup
            .components
            .new_encoder(&mut setup.seed.stream("encode.init"))?;
        clica_encoders::load_safetensors(encoder.as_mut(), &bytes).map_err(|e| match e {
            e @ clica_core::Error::Shape(_) => data_err(
                &weights_path,
                format!(
                    "does not fit the encoder `{}` that config.toml builds: {e}",
                    encoder.describe()
                ),
            ),
            e => data_err(&weights_path, e),
        })?;
        Ok(TrainedEncoder {
            encoder,
            dir: dir.to_path_buf(),
            fingerprint,
        })
    }

    /// Shape of one observation (`[d]`, or `[channels, height, width]` for images).
    pub fn input_shape(&self) -> Vec<usize> {
        self.encoder.input_shape()
    }

    /// Dimension of the representation.
    pub fn output_dim(&self) -> usize {
        self.encoder.output_dim()
    }

    /// The encoder's description, as the run's result files record it.
    pub fn describe(&self) -> String {
        self.encoder.describe()
    }

    /// The fingerprint of the run's data-generating process.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The run folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Encodes rows of observations (`input_shape`'s values flattened row-major; images
    /// channel-first with values in [0, 1], as `clica render` writes them after division by
    /// 255), `batch` rows at a time (0 = all at once).
    ///
    /// # Errors
    /// [`Error::Data`] when `x` has no rows, the wrong number of columns, or a value that is
    /// NaN or ±∞ (naming the first one).
    pub fn encode(&self, x: ArrayView2<'_, f32>, batch: usize) -> Result<Array2<f32>> {
        let want = self.encoder.input_len();
        if x.nrows() == 0 {
            return Err(Error::Data("no observations to encode".into()));
        }
        if x.ncols() != want {
            return Err(Error::Data(format!(
                "observations have {} values each, but the encoder takes {want} (shape {:?})",
                x.ncols(),
                self.input_shape()
            )));
        }
        if let Some(((r, c), v)) = x.indexed_iter().find(|(_, v)| !v.is_finite()) {
            return Err(Error::Data(format!(
                "observation {r}, value {c} is {v}: the encoder needs finite inputs"
            )));
        }
        let batch = if batch == 0 { x.nrows() } else { batch };
        let mut out = Array2::<f32>::zeros((x.nrows(), self.output_dim()));
        let mut at = 0;
        while at < x.nrows() {
            let end = (at + batch).min(x.nrows());
            let rows = Slice::from(at..end);
            let h = self.encoder.encode_f32(x.slice_axis(Axis(0), rows));
            out.slice_axis_mut(Axis(0), rows).assign(&h);
            at = end;
        }
        Ok(out)
    }

    /// Encodes every image of a set in the reference layout, resized (by area averaging) to
    /// the encoder's input side when the files are larger; returns the representation and
    /// the set's raw latents.
    ///
    /// # Errors
    /// As [`ImageSet::load`]; [`Error::Data`] when the encoder does not take RGB images.
    pub fn encode_image_set(
        &self,
        root: &Path,
        batch: usize,
    ) -> Result<(Array2<f32>, Array2<f64>)> {
        let shape = self.input_shape();
        let &[3, h, w] = shape.as_slice() else {
            return Err(Error::Data(format!(
                "{}: the run's encoder takes observations of shape {shape:?}, not RGB images",
                self.dir.display()
            )));
        };
        if h != w {
            return Err(Error::Data(format!(
                "the run's encoder takes {h} × {w} images; image sets hold square ones"
            )));
        }
        let set = ImageSet::load(root, Some(h))?;
        let x = set.observations();
        let z_hat = self.encode(x.view(), batch)?;
        Ok((z_hat, set.latents))
    }
}

/// The `generator_fingerprint` of a run config's `[run]` table.
fn recorded_fingerprint(text: &str) -> Option<String> {
    let table: toml::Table = toml::from_str(text).ok()?;
    table
        .get("run")?
        .get("generator_fingerprint")?
        .as_str()
        .map(str::to_string)
}
