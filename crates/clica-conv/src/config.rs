//! What a convolutional encoder is built from, validated once.

use clica_core::{Error, Result};
use clica_encoders::{AdamConfig, Normalization};

/// One convolution: `out` channels, a square `kernel`, `stride` and zero `padding`; a ReLU
/// follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvSpec {
    /// Output channels.
    pub out: usize,
    /// Kernel side.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding on every side.
    pub padding: usize,
}

/// A convolutional encoder: convolutions with ReLU, flattened (height, width, channel
/// order), one linear layer to `output_dim`, an output layer.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvEncoderConfig {
    /// Shape of one observation: channels, height, width (rows of `x` hold it channel-first).
    pub input: [usize; 3],
    /// The convolutions, in order.
    pub convs: Vec<ConvSpec>,
    /// Dimension of the representation.
    pub output_dim: usize,
    /// Output layer (as the MLP encoder's).
    pub normalization: Normalization,
    /// Per-channel mean and standard deviation subtracted from and divided into the input
    /// (the data's own statistics); `None` feeds the values as they are.
    pub input_norm: Option<(Vec<f32>, Vec<f32>)>,
    /// Adam hyper-parameters.
    pub adam: AdamConfig,
    /// Image blocks processed in parallel; `0` = one per rayon worker thread. Results are
    /// bitwise reproducible for a fixed value.
    pub threads: usize,
}

impl ConvEncoderConfig {
    /// The conv net of the paper's KITTI Masks experiment for `input` images: four 4 × 4
    /// convolutions of stride 2 (32, 32, 64, 64 channels), a convolution to 256 channels
    /// whose kernel spans what is left (4 × 4 at 64 × 64 input), ReLU after each, then a
    /// linear layer to `output_dim`; unbounded output.
    pub fn kitti(input: [usize; 3], output_dim: usize) -> Self {
        Self::strided(input, &[32, 32, 64, 64], 256, output_dim)
    }

    /// The KITTI net's pattern with other widths: one 4 × 4 convolution of stride 2 and
    /// padding 1 per entry of `channels` (each halves the image side), a convolution to
    /// `features` channels whose kernel spans what is left (side / 2^len, at least 1), ReLU
    /// after each, then a linear layer to `output_dim`; unbounded output. `kitti` is
    /// `strided(input, &[32, 32, 64, 64], 256, output_dim)`. Sizes are checked by
    /// [`ConvEncoderConfig::validate`].
    pub fn strided(
        input: [usize; 3],
        channels: &[usize],
        features: usize,
        output_dim: usize,
    ) -> Self {
        let mut convs: Vec<ConvSpec> = channels
            .iter()
            .map(|&out| ConvSpec {
                out,
                kernel: 4,
                stride: 2,
                padding: 1,
            })
            .collect();
        let left = input[1]
            .checked_shr(u32::try_from(channels.len()).unwrap_or(u32::MAX))
            .unwrap_or(0)
            .max(1);
        convs.push(ConvSpec {
            out: features,
            kernel: left,
            stride: 1,
            padding: 0,
        });
        ConvEncoderConfig {
            input,
            convs,
            output_dim,
            normalization: Normalization::None,
            input_norm: None,
            adam: AdamConfig::default(),
            threads: 0,
        }
    }

    /// Prepends one 3 × 3 convolution of stride 1 and padding 1 (the image's side kept) per
    /// entry of `channels`, each with that many output channels and a ReLU: an encoder that
    /// keeps full resolution for its first layers. `with_stem(&[])` changes nothing.
    pub fn with_stem(mut self, channels: &[usize]) -> Self {
        let stem = channels.iter().map(|&out| ConvSpec {
            out,
            kernel: 3,
            stride: 1,
            padding: 1,
        });
        self.convs.splice(0..0, stem);
        self
    }

    /// Sets the output layer.
    pub fn with_normalization(mut self, n: Normalization) -> Self {
        self.normalization = n;
        self
    }

    /// Sets the input normalisation (per-channel mean and std).
    pub fn with_input_norm(mut self, mean: Vec<f32>, std: Vec<f32>) -> Self {
        self.input_norm = Some((mean, std));
        self
    }

    /// Sets the number of parallel image blocks.
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    /// Checks the configuration and returns the shapes it implies.
    pub fn validate(&self) -> Result<Shapes> {
        let [c, h, w] = self.input;
        if c == 0 || h == 0 || w == 0 {
            return Err(Error::param(
                "input",
                format!("every dimension must be positive, got {:?}", self.input),
            ));
        }
        if self.output_dim == 0 {
            return Err(Error::param("output_dim", "must be at least 1"));
        }
        if self.convs.is_empty() {
            return Err(Error::param("convs", "at least one convolution"));
        }
        let mut layers = Vec::with_capacity(self.convs.len());
        let (mut c, mut h, mut w) = (c, h, w);
        for (i, s) in self.convs.iter().enumerate() {
            if s.out == 0 || s.kernel == 0 || s.stride == 0 {
                return Err(Error::param(
                    format!("convs.{i}"),
                    format!("channels, kernel and stride must be positive, got {s:?}"),
                ));
            }
            let (hp, wp) = (h + 2 * s.padding, w + 2 * s.padding);
            if hp < s.kernel || wp < s.kernel {
                return Err(Error::param(
                    format!("convs.{i}"),
                    format!(
                        "a {0}×{0} kernel does not fit its {h}×{w} input (padding {1})",
                        s.kernel, s.padding
                    ),
                ));
            }
            let (oh, ow) = (
                (hp - s.kernel) / s.stride + 1,
                (wp - s.kernel) / s.stride + 1,
            );
            layers.push(LayerShape {
                spec: *s,
                in_c: c,
                in_h: h,
                in_w: w,
                out_h: oh,
                out_w: ow,
            });
            (c, h, w) = (s.out, oh, ow);
        }
        check_input_norm(self.input_norm.as_ref(), self.input[0])?;
        check_normalization(self.normalization)?;
        Ok(Shapes {
            layers,
            features: c * h * w,
        })
    }

    /// A one-line description recorded in result files.
    pub fn describe(&self) -> String {
        let convs: Vec<String> = self
            .convs
            .iter()
            .map(|s| {
                format!(
                    "{}@{}x{}/s{}p{}",
                    s.out, s.kernel, s.kernel, s.stride, s.padding
                )
            })
            .collect();
        let norm = match &self.input_norm {
            Some((mean, std)) => format!("; input (x - {mean:?}) / {std:?}"),
            None => String::new(),
        };
        format!(
            "conv [{}] -> relu -> [{}] -> linear {} ({:?}){norm}",
            self.input.map(|v| v.to_string()).join("x"),
            convs.join(", "),
            self.output_dim,
            self.normalization
        )
    }
}

/// The shapes of a validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shapes {
    /// One entry per convolution.
    pub layers: Vec<LayerShape>,
    /// Width of the flattened features after the last convolution.
    pub features: usize,
}

/// A convolution's input and output shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerShape {
    /// The convolution.
    pub spec: ConvSpec,
    /// Input channels, height, width.
    pub in_c: usize,
    #[allow(missing_docs)]
    pub in_h: usize,
    #[allow(missing_docs)]
    pub in_w: usize,
    /// Output height and width.
    pub out_h: usize,
    #[allow(missing_docs)]
    pub out_w: usize,
}

impl LayerShape {
    /// Values per image of the input (HWC).
    pub fn in_len(&self) -> usize {
        self.in_c * self.in_h * self.in_w
    }
    /// Output positions per image.
    pub fn positions(&self) -> usize {
        self.out_h * self.out_w
    }
    /// Columns of the im2col matrix: kernel² × input channels.
    pub fn k(&self) -> usize {
        self.spec.kernel * self.spec.kernel * self.in_c
    }
    /// Values per image of the output (HWC).
    pub fn out_len(&self) -> usize {
        self.positions() * self.spec.out
    }
    /// Multiply-adds of the forward pass per image.
    pub fn macs(&self) -> usize {
        self.positions() * self.k() * self.spec.out
    }
}

/// Checks a per-channel input normalisation for images of `channels` channels.
pub(crate) fn check_input_norm(norm: Option<&(Vec<f32>, Vec<f32>)>, channels: usize) -> Result<()> {
    if let Some((mean, std)) = norm {
        if mean.len() != channels || std.len() != channels {
            return Err(Error::param(
                "input_norm",
                format!(
                    "needs one mean and one std per channel ({channels}), got {} and {}",
                    mean.len(),
                    std.len()
                ),
            ));
        }
        if mean.iter().chain(std).any(|v| !v.is_finite()) || std.iter().any(|&s| s <= 0.0) {
            return Err(Error::param(
                "input_norm",
                "means must be finite and stds finite and positive",
            ));
        }
    }
    Ok(())
}

/// Checks the output layer's radius or bound.
pub(crate) fn check_normalization(normalization: Normalization) -> Result<()> {
    match normalization {
        Normalization::Sphere { radius }
        | Normalization::LearnableSphere {
            init_radius: radius,
        } if !(radius.is_finite() && radius > 0.0) => Err(Error::param(
            "normalization",
            format!("the radius must be finite and positive, got {radius}"),
        )),
        Normalization::LearnableBox { init_bound }
            if !(init_bound.is_finite() && init_bound > 0.0) =>
        {
            Err(Error::param(
                "normalization",
                format!("the bound must be finite and positive, got {init_bound}"),
            ))
        }
        _ => Ok(()),
    }
}
