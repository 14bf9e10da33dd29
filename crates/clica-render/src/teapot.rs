//! Newell's teapot: the 32 bicubic Bézier patches over 306 control points (public domain,
//! `data/teapot.txt`), tessellated into a triangle mesh in the scene's model frame.

use crate::math::{Mat3, Vec3};

/// The patch data in the classic text layout: the patch count, one line of 16 one-based
/// control-point indices per patch, the point count, one `x,y,z` line per point.
const TEAPOT_TXT: &str = include_str!("../data/teapot.txt");

/// The teapot's height in the scene (Blender units).
pub const HEIGHT: f32 = 3.0;
/// The turn of the long axis (spout to handle) in the xy plane, in degrees.
pub const YAW_DEG: f32 = 45.0;
/// Grid per patch used to measure the surface's bounding box (independent of the
/// tessellation level, so the object's pivot does not move with the level).
const BOX_GRID: usize = 16;

/// A triangle mesh with per-vertex unit normals.
#[derive(Debug, Clone)]
pub struct Mesh {
    /// Vertex positions.
    pub positions: Vec<Vec3>,
    /// Unit normals, one per vertex (oriented per patch; shading is two-sided).
    pub normals: Vec<Vec3>,
    /// Triangles as vertex indices; degenerate (zero-area) ones are dropped.
    pub triangles: Vec<[u32; 3]>,
}

struct Patches {
    points: Vec<Vec3>,
    patches: Vec<[usize; 16]>,
}

fn parse() -> Patches {
    let mut lines = TEAPOT_TXT.lines().map(str::trim).filter(|l| !l.is_empty());
    let n_patches: usize = lines
        .next()
        .and_then(|l| l.parse().ok())
        .expect("teapot data: patch count");
    let mut patches = Vec::with_capacity(n_patches);
    for _ in 0..n_patches {
        let line = lines.next().expect("teapot data: patch line");
        let mut idx = [0usize; 16];
        let mut k = 0;
        for v in line.split(',') {
            idx[k] = v.trim().parse::<usize>().expect("teapot data: index") - 1;
            k += 1;
        }
        assert_eq!(k, 16, "teapot data: 16 indices per patch");
        patches.push(idx);
    }
    let n_points: usize = lines
        .next()
        .and_then(|l| l.parse().ok())
        .expect("teapot data: point count");
    let mut points = Vec::with_capacity(n_points);
    for _ in 0..n_points {
        let line = lines.next().expect("teapot data: point line");
        let c: Vec<f32> = line
            .split(',')
            .map(|v| v.trim().parse::<f32>().expect("teapot data: coordinate"))
            .collect();
        assert_eq!(c.len(), 3, "teapot data: 3 coordinates per point");
        points.push(Vec3::new(c[0], c[1], c[2]));
    }
    assert!(lines.next().is_none(), "teapot data: trailing lines");
    assert!(
        patches.iter().flatten().all(|&i| i < points.len()),
        "teapot data: index range"
    );
    Patches { points, patches }
}

/// Bernstein weights of degree 3 and of their derivative (degree 2, times 3) at `t`.
fn bernstein(t: f32) -> ([f32; 4], [f32; 4]) {
    let s = 1.0 - t;
    let b = [s * s * s, 3.0 * t * s * s, 3.0 * t * t * s, t * t * t];
    let d = [
        -3.0 * s * s,
        3.0 * s * s - 6.0 * t * s,
        6.0 * t * s - 3.0 * t * t,
        3.0 * t * t,
    ];
    (b, d)
}

/// The surface point and its two tangents of patch `p` at `(u, v)`.
fn eval(pts: &[Vec3], p: &[usize; 16], u: f32, v: f32) -> (Vec3, Vec3, Vec3) {
    let (bu, du) = bernstein(u);
    let (bv, dv) = bernstein(v);
    let mut pos = Vec3::default();
    let mut tu = Vec3::default();
    let mut tv = Vec3::default();
    for i in 0..4 {
        for j in 0..4 {
            let c = pts[p[4 * i + j]];
            pos = pos + c * (bu[i] * bv[j]);
            tu = tu + c * (du[i] * bv[j]);
            tv = tv + c * (bu[i] * dv[j]);
        }
    }
    (pos, tu, tv)
}

/// The unit normal at `(u, v)`; at a pole (where a patch edge collapses to a point and one
/// tangent vanishes) it is taken a little inside the patch.
fn normal(pts: &[Vec3], p: &[usize; 16], u: f32, v: f32) -> Vec3 {
    let (_, tu, tv) = eval(pts, p, u, v);
    let n = tu.cross(tv);
    if n.norm() > 1e-6 {
        return n.normalized();
    }
    let nudge = |t: f32| if t < 0.5 { t + 1e-3 } else { t - 1e-3 };
    let (_, tu, tv) = eval(pts, p, nudge(u), nudge(v));
    tu.cross(tv).normalized()
}

/// Centre of the surface's bounding box and the scale that makes its height [`HEIGHT`].
fn frame(data: &Patches) -> (Vec3, f32) {
    let mut lo = Vec3::new(f32::MAX, f32::MAX, f32::MAX);
    let mut hi = Vec3::new(f32::MIN, f32::MIN, f32::MIN);
    for p in &data.patches {
        for i in 0..=BOX_GRID {
            for j in 0..=BOX_GRID {
                let (q, _, _) = eval(
                    &data.points,
                    p,
                    i as f32 / BOX_GRID as f32,
                    j as f32 / BOX_GRID as f32,
                );
                lo = Vec3::new(lo.x.min(q.x), lo.y.min(q.y), lo.z.min(q.z));
                hi = Vec3::new(hi.x.max(q.x), hi.y.max(q.y), hi.z.max(q.z));
            }
        }
    }
    ((lo + hi) * 0.5, HEIGHT / (hi.z - lo.z))
}

/// The teapot tessellated with `level × level` quads per patch, in the model frame: the
/// surface's bounding-box centre at the origin, height [`HEIGHT`], long axis turned
/// [`YAW_DEG`] about z.
///
/// # Panics
/// If `level` is 0.
pub fn mesh(level: usize) -> Mesh {
    assert!(level > 0, "tessellation level must be positive");
    let data = parse();
    let (centre, scale) = frame(&data);
    let yaw = Mat3::rot_z(YAW_DEG.to_radians());
    let per = level + 1;
    let mut positions = Vec::with_capacity(data.patches.len() * per * per);
    let mut normals = Vec::with_capacity(positions.capacity());
    let mut triangles = Vec::with_capacity(data.patches.len() * level * level * 2);
    for p in &data.patches {
        let base = positions.len() as u32;
        for i in 0..per {
            for j in 0..per {
                let (u, v) = (i as f32 / level as f32, j as f32 / level as f32);
                let (q, _, _) = eval(&data.points, p, u, v);
                positions.push(yaw.mul_vec((q - centre) * scale));
                normals.push(yaw.mul_vec(normal(&data.points, p, u, v)));
            }
        }
        for i in 0..level {
            for j in 0..level {
                let a = base + (i * per + j) as u32;
                let b = a + 1;
                let c = a + per as u32;
                let d = c + 1;
                for t in [[a, c, d], [a, d, b]] {
                    let (pa, pb, pc) = (
                        positions[t[0] as usize],
                        positions[t[1] as usize],
                        positions[t[2] as usize],
                    );
                    if (pb - pa).cross(pc - pa).norm() > 1e-9 {
                        triangles.push(t);
                    }
                }
            }
        }
    }
    Mesh {
        positions,
        normals,
        triangles,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_parses_with_the_classic_counts() {
        let d = parse();
        assert_eq!(d.patches.len(), 32);
        assert_eq!(d.points.len(), 306);
    }

    #[test]
    fn proportions_are_newells() {
        // Unturned bounding box of the surface: length : height ≈ 2.04, width : height ≈ 1.27.
        let d = parse();
        let mut lo = Vec3::new(f32::MAX, f32::MAX, f32::MAX);
        let mut hi = Vec3::new(f32::MIN, f32::MIN, f32::MIN);
        for p in &d.patches {
            for i in 0..=32 {
                for j in 0..=32 {
                    let (q, _, _) = eval(&d.points, p, i as f32 / 32.0, j as f32 / 32.0);
                    lo = Vec3::new(lo.x.min(q.x), lo.y.min(q.y), lo.z.min(q.z));
                    hi = Vec3::new(hi.x.max(q.x), hi.y.max(q.y), hi.z.max(q.z));
                }
            }
        }
        let h = hi.z - lo.z;
        assert!(
            ((hi.x - lo.x) / h - 2.04).abs() < 0.02,
            "length/height {}",
            (hi.x - lo.x) / h
        );
        assert!(
            ((hi.y - lo.y) / h - 1.27).abs() < 0.02,
            "width/height {}",
            (hi.y - lo.y) / h
        );
    }

    #[test]
    fn mesh_is_centred_scaled_and_has_unit_normals() {
        let m = mesh(6);
        let zmin = m.positions.iter().map(|p| p.z).fold(f32::MAX, f32::min);
        let zmax = m.positions.iter().map(|p| p.z).fold(f32::MIN, f32::max);
        assert!(
            (zmax - zmin - HEIGHT).abs() < 0.01,
            "height {}",
            zmax - zmin
        );
        assert!(
            (zmax + zmin).abs() < 0.01,
            "vertical centre {}",
            (zmax + zmin) / 2.0
        );
        assert!(m.normals.iter().all(|n| (n.norm() - 1.0).abs() < 1e-4));
        // Turned 45°: the spout tip (largest x before the turn) lies along x = y.
        let tip = m.positions.iter().copied().fold(Vec3::default(), |a, p| {
            if p.x + p.y > a.x + a.y {
                p
            } else {
                a
            }
        });
        assert!((tip.x - tip.y).abs() < 0.15, "spout tip {tip:?}");
        assert!(m.triangles.len() > 32 * 36 * 2 - 200);
    }
}
