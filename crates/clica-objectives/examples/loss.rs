//! A loss kernel returns the batch-mean loss and its gradient with respect to both views,
//! with no autodiff: feed the gradient to any encoder's backward pass.
//!
//! `cargo run --release -p clica-objectives --example loss`

use clica_objectives::{ContrastiveLoss, LpForm, LpInfoNce, SelfTerm, SphereInfoNce};
use ndarray::Array2;

fn main() -> Result<(), clica_core::Error> {
    let b = 256;
    let h = Array2::from_shape_fn((b, 4), |(i, j)| ((i * 7 + j * 3) % 11) as f32 / 11.0 - 0.5);
    let h_tilde = &h + 0.01;
    let losses: [Box<dyn ContrastiveLoss<f32>>; 2] = [
        Box::new(SphereInfoNce::new(1.0, SelfTerm::Keep)?),
        Box::new(LpInfoNce::new(1, 1.0, LpForm::SimClr, SelfTerm::Keep)?),
    ];
    for loss in losses {
        let (mut g, mut g_tilde) = (Array2::zeros((b, 4)), Array2::zeros((b, 4)));
        let value = loss.loss_and_grad(h.view(), h_tilde.view(), g.view_mut(), g_tilde.view_mut());
        println!(
            "{}: loss {value:.4}, |∂/∂h| {:.4}",
            loss.name(),
            g.iter().map(|v| v * v).sum::<f32>().sqrt()
        );
    }
    Ok(())
}
