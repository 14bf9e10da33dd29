//! Convolutional encoders for image observations, trained through clica's
//! [`TrainableEncoder`](clica_core::TrainableEncoder) trait.
//!
//! [`ConvEncoder`] runs convolutions as im2col + GEMM (faer's, single-threaded per block of
//! images) on NHWC activations with a hand-written backward pass; the batch is split into
//! blocks of images processed in parallel. The default architecture
//! ([`ConvEncoderConfig::kitti`]) is the small conv net of the paper's KITTI Masks
//! experiment; the output layers are the MLP encoder's ([`Normalization`]: unbounded,
//! sphere, learnable sphere, learnable box). Observations are rows of channel-first `f32`
//! values.
//!
//! [`ResNetEncoder`] is the paper's 3DIdent encoder ([`ResNetConfig::resnet18`]):
//! torchvision's ResNet-18 (parameter names included, so weights can be exchanged with
//! PyTorch) with batch norm, then `fc` → LeakyReLU → linear → output layer. Batch norm
//! couples the images of a batch, so its engine runs the batch layer by layer instead of
//! block by block.
//!
//! # Example
//!
//! ```
//! use clica_conv::{ConvEncoder, ConvEncoderConfig};
//! use clica_core::{RunSeed, TrainableEncoder};
//! use clica_optim::{Adam, AdamConfig};

//! use ndarray::Array2;
//!
//! let config = ConvEncoderConfig::kitti([3, 32, 32], 10);
//! let mut enc = ConvEncoder::new(config, &mut RunSeed::new(0).stream("encoder"))?;
//! let x = Array2::<f32>::from_shape_fn((8, 3 * 32 * 32), |(i, j)| ((i * 7 + j) % 13) as f32 / 13.0);
//!
//! // One step of "pull the outputs towards zero" with Adam.
//! let mut adam = Adam::new(AdamConfig::default())?;
//! let h = enc.forward_train(x.view()).to_owned();
//! let before = h.iter().map(|v| v * v).sum::<f32>();
//! enc.backward((&h * 2.0).view());
//! adam.step(&mut enc, 1e-4)?;
//! let after = enc.encode_f32(x.view()).iter().map(|v| v * v).sum::<f32>();
//! assert!(after < before);
//! # Ok::<(), clica_core::Error>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod encoder;
mod engine;
mod named;
mod output;
mod resnet;

pub use clica_encoders::{AdamConfig, Normalization};
pub use config::{ConvEncoderConfig, ConvSpec, LayerShape, Shapes};
pub use encoder::ConvEncoder;
pub use resnet::{BasicBlock, Plan, Pool, ResNetConfig, ResNetEncoder};
