//! The dfdx backend: dfdx 0.13 tensors with runtime dimensions, dfdx's reverse-mode
//! autodiff, and dfdx's Adam kernel.
//!
//! dfdx's `nn` modules are const-generic, so this backend builds the network from tensor
//! operations on `(usize, usize)` shapes instead: `x.matmul(Wᵀ) + b` (bias broadcast along
//! rows) and LeakyReLU as `maximum(z, s·z)` per layer, then the normalisation. The output
//! gradient supplied by the loss kernel enters as the surrogate scalar `Σ out ⊙ grad_out`,
//! whose gradient with respect to every parameter is exactly the vector–Jacobian product
//! needed.
//!
//! `forward_train` runs the network without a tape and keeps only its output and a copy of
//! the input; `backward` re-traces the same operations from that input and back-propagates
//! the surrogate. The gradients are those of the output `forward_train` returned (the same
//! kernels on the same values), at the cost of a second forward pass, and nothing
//! `!Send` (dfdx's tape of boxed closures) outlives a call.

use crate::config::{EncoderConfig, Normalization};
use crate::native::NORM_EPS;
use crate::params::Layout;
use dfdx::shapes::{Axes2, Axis, HasShape, Shape};
use dfdx::tensor::{Cpu, Gradients, Tape, Tensor, TensorFromVec, Trace};
use dfdx::tensor_ops::{
    AdamConfig as DfdxAdam, Backward, BroadcastTo, PermuteTo, ReshapeTo, SumTo, TryMatMul,
};
use ndarray::ArrayView2;

type Mat = Tensor<(usize, usize), f32, Cpu>;
type Vector = Tensor<(usize,), f32, Cpu>;

/// The dfdx MLP: parameters as dfdx tensors, Adam moments as dfdx gradient maps.
pub(crate) struct DfdxMlp {
    dev: Cpu,
    widths: Vec<usize>,
    slope: f32,
    norm: Normalization,
    weights: Vec<Mat>,
    biases: Vec<Vector>,
    /// `norm.radius` (shape `[1]`) or `norm.bound` (shape `[output_dim]`).
    norm_param: Option<Vector>,
    adam: DfdxAdam,
    t: i32,
    moment1: Gradients<f32, Cpu>,
    moment2: Gradients<f32, Cpu>,
    /// The input of the last `forward_train`, until its `backward`.
    pending: Option<Mat>,
    out: Vec<f32>,
    grads: Option<Gradients<f32, Cpu>>,
}

impl std::fmt::Debug for DfdxMlp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DfdxMlp")
            .field("widths", &self.widths)
            .field("slope", &self.slope)
            .field("norm", &self.norm)
            .field("adam_steps", &self.t)
            .finish_non_exhaustive()
    }
}

impl DfdxMlp {
    pub fn new(cfg: &EncoderConfig, layout: &Layout, params: &[f32]) -> Self {
        let dev = Cpu::default();
        let mut m = DfdxMlp {
            dev,
            widths: layout.widths.clone(),
            slope: cfg.negative_slope as f32,
            norm: cfg.normalization,
            weights: Vec::new(),
            biases: Vec::new(),
            norm_param: None,
            adam: DfdxAdam {
                lr: 1e-3,
                betas: [cfg.adam.beta1, cfg.adam.beta2],
                eps: cfg.adam.eps,
                weight_decay: None,
            },
            t: 0,
            moment1: Gradients::leaky(),
            moment2: Gradients::leaky(),
            pending: None,
            out: Vec::new(),
            grads: None,
        };
        m.set_params(layout, params);
        m
    }

    /// Replaces the parameters (new tensors) and resets Adam and any pending pass.
    pub fn set_params(&mut self, layout: &Layout, params: &[f32]) {
        let w = &layout.widths;
        self.weights = (0..layout.num_layers())
            .map(|l| {
                self.dev
                    .tensor_from_vec(params[layout.weight[l].clone()].to_vec(), (w[l + 1], w[l]))
            })
            .collect();
        self.biases = (0..layout.num_layers())
            .map(|l| {
                self.dev
                    .tensor_from_vec(params[layout.bias[l].clone()].to_vec(), (w[l + 1],))
            })
            .collect();
        self.norm_param = (!layout.norm.is_empty()).then(|| {
            self.dev
                .tensor_from_vec(params[layout.norm.clone()].to_vec(), (layout.norm.len(),))
        });
        self.t = 0;
        self.moment1 = Gradients::leaky();
        self.moment2 = Gradients::leaky();
        self.pending = None;
        self.grads = None;
    }

    /// All parameters in the flat layout.
    pub fn params(&self, layout: &Layout) -> Vec<f32> {
        let mut p = vec![0.0; layout.total];
        for l in 0..layout.num_layers() {
            p[layout.weight[l].clone()].copy_from_slice(&self.weights[l].as_vec());
            p[layout.bias[l].clone()].copy_from_slice(&self.biases[l].as_vec());
        }
        if let Some(n) = &self.norm_param {
            p[layout.norm.clone()].copy_from_slice(&n.as_vec());
        }
        p
    }

    pub fn adam_steps(&self) -> u64 {
        self.t as u64
    }

    /// The network on a (possibly traced) batch.
    fn forward<T: Tape<f32, Cpu>>(
        &self,
        x: Tensor<(usize, usize), f32, Cpu, T>,
    ) -> Tensor<(usize, usize), f32, Cpu, T> {
        let layers = self.weights.len();
        let rows = x.shape().0;
        let mut h = x;
        for l in 0..layers {
            let shape = (rows, self.widths[l + 1]);
            let wt = self.weights[l]
                .retaped::<T>()
                .permute::<(usize, usize), Axes2<1, 0>>();
            let b = self.biases[l]
                .retaped::<T>()
                .broadcast_like::<(usize, usize), Axis<0>>(&shape);
            h = h.matmul(wt) + b;
            if l + 1 < layers {
                // LeakyReLU as max(z, s·z) (valid for 0 ≤ s ≤ 1): two contiguous kernels
                // instead of dfdx's `prelu` (compare + broadcast multiply + choose), about
                // half the time forward and backward. Gradients are identical except at
                // z = 0 exactly, where `maximum` splits the tie (0.5·(1 + s)).
                let scaled = h.retaped::<T>() * self.slope;
                h = h.maximum(scaled);
            }
        }
        let shape = *h.shape();
        match self.norm {
            Normalization::None => h,
            Normalization::Sphere { .. } | Normalization::LearnableSphere { .. } => {
                let norm = h
                    .retaped::<T>()
                    .square()
                    .sum::<(usize,), Axis<1>>()
                    .sqrt()
                    .clamp(NORM_EPS, f32::MAX)
                    .broadcast_like::<(usize, usize), Axis<1>>(&shape);
                let u = h / norm;
                match (&self.norm, &self.norm_param) {
                    (Normalization::Sphere { radius }, _) => u * (*radius as f32),
                    (_, Some(r)) => {
                        let r = r
                            .retaped::<T>()
                            .reshape_like(&())
                            .broadcast_like::<(usize, usize), Axes2<0, 1>>(&shape);
                        u * r
                    }
                    _ => unreachable!("learnable sphere without a radius tensor"),
                }
            }
            Normalization::LearnableBox { .. } => {
                let b = self
                    .norm_param
                    .as_ref()
                    .expect("learnable box without a bound tensor")
                    .retaped::<T>()
                    .broadcast_like::<(usize, usize), Axis<0>>(&shape);
                h.sigmoid() * b
            }
        }
    }

    fn input(&self, x: ArrayView2<'_, f32>) -> Mat {
        let v: Vec<f32> = x.iter().copied().collect();
        self.dev.tensor_from_vec(v, x.dim())
    }

    /// The forward pass without a tape; the input is kept for `backward`.
    pub fn forward_train(&mut self, x: ArrayView2<'_, f32>) -> ArrayView2<'_, f32> {
        let xt = self.input(x);
        let out = self.forward(xt.clone());
        self.out = out.as_vec();
        let dim = *out.shape();
        self.pending = Some(xt);
        self.grads = None;
        ArrayView2::from_shape(dim, &self.out).expect("output has rows × output_dim values")
    }

    /// Re-traces the forward pass from the kept input and back-propagates `Σ out ⊙ g`.
    pub fn backward(&mut self, g: ArrayView2<'_, f32>) {
        let x = self
            .pending
            .take()
            .expect("backward needs a forward_train first (once per forward_train)");
        assert_eq!(
            g.dim(),
            (x.shape().0, self.widths[self.widths.len() - 1]),
            "grad_out must have the shape of the last forward_train output"
        );
        let out = self.forward(x.trace(Gradients::leaky()));
        let gt = self.input(g);
        let surrogate = (out * gt).sum::<(), Axes2<0, 1>>();
        self.grads = Some(surrogate.backward());
    }

    /// The gradient of the last `backward`, flat layout.
    pub fn grad(&self, layout: &Layout) -> Option<Vec<f32>> {
        let g = self.grads.as_ref()?;
        let mut flat = vec![0.0; layout.total];
        for l in 0..layout.num_layers() {
            flat[layout.weight[l].clone()].copy_from_slice(&g.get(&self.weights[l]).as_vec());
            flat[layout.bias[l].clone()].copy_from_slice(&g.get(&self.biases[l]).as_vec());
        }
        if let Some(n) = &self.norm_param {
            flat[layout.norm.clone()].copy_from_slice(&g.get(n).as_vec());
        }
        Some(flat)
    }

    /// One step of dfdx's Adam kernel on every parameter.
    pub fn step(&mut self, lr: f32) {
        let mut grads = self
            .grads
            .take()
            .expect("step needs a backward first (once per backward)");
        self.t += 1;
        self.adam.lr = f64::from(lr);
        let (m1, m2, cfg, t) = (&mut self.moment1, &mut self.moment2, &self.adam, self.t);
        for w in &mut self.weights {
            update(w, &mut grads, m1, m2, cfg, t);
        }
        for b in &mut self.biases {
            update(b, &mut grads, m1, m2, cfg, t);
        }
        if let Some(n) = &mut self.norm_param {
            update(n, &mut grads, m1, m2, cfg, t);
        }
    }

    pub fn encode(&self, x: ArrayView2<'_, f32>, out: &mut [f32]) {
        let y = self.forward(self.input(x));
        out.copy_from_slice(&y.as_vec());
    }
}

/// dfdx's Adam kernel on one parameter tensor.
fn update<S: Shape>(
    p: &mut Tensor<S, f32, Cpu>,
    grads: &mut Gradients<f32, Cpu>,
    moment1: &mut Gradients<f32, Cpu>,
    moment2: &mut Gradients<f32, Cpu>,
    cfg: &DfdxAdam,
    t: i32,
) {
    const CPU_ALLOC: &str = "dfdx Cpu allocation failed";
    let g = grads.get_or_alloc_mut(p).expect(CPU_ALLOC);
    let m = moment1.get_or_alloc_mut(p).expect(CPU_ALLOC);
    let v = moment2.get_or_alloc_mut(p).expect(CPU_ALLOC);
    cfg.try_update(t, p, m, v, g)
        .expect("dfdx Adam kernel failed");
}
