//! Small f32 vector and matrix helpers. Everything is plain IEEE arithmetic (no fused
//! multiply-add, transcendental functions from `libm`), so results are the same on every
//! machine.

use std::ops::{Add, Mul, Neg, Sub};

/// A 3-vector of `f32`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Vec3 {
    pub x: f32,
    pub y: f32,
    pub z: f32,
}

impl Vec3 {
    pub const fn new(x: f32, y: f32, z: f32) -> Self {
        Vec3 { x, y, z }
    }
    pub fn dot(self, o: Vec3) -> f32 {
        self.x * o.x + self.y * o.y + self.z * o.z
    }
    pub fn cross(self, o: Vec3) -> Vec3 {
        Vec3::new(
            self.y * o.z - self.z * o.y,
            self.z * o.x - self.x * o.z,
            self.x * o.y - self.y * o.x,
        )
    }
    pub fn norm(self) -> f32 {
        self.dot(self).sqrt()
    }
    /// The unit vector along `self`; the zero vector stays zero.
    pub fn normalized(self) -> Vec3 {
        let n = self.norm();
        if n > 0.0 {
            self * (1.0 / n)
        } else {
            self
        }
    }
    pub fn scale3(self, o: Vec3) -> Vec3 {
        Vec3::new(self.x * o.x, self.y * o.y, self.z * o.z)
    }
}

impl Add for Vec3 {
    type Output = Vec3;
    fn add(self, o: Vec3) -> Vec3 {
        Vec3::new(self.x + o.x, self.y + o.y, self.z + o.z)
    }
}
impl Sub for Vec3 {
    type Output = Vec3;
    fn sub(self, o: Vec3) -> Vec3 {
        Vec3::new(self.x - o.x, self.y - o.y, self.z - o.z)
    }
}
impl Mul<f32> for Vec3 {
    type Output = Vec3;
    fn mul(self, s: f32) -> Vec3 {
        Vec3::new(self.x * s, self.y * s, self.z * s)
    }
}
impl Neg for Vec3 {
    type Output = Vec3;
    fn neg(self) -> Vec3 {
        Vec3::new(-self.x, -self.y, -self.z)
    }
}

/// A 3 × 3 matrix, rows first.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mat3(pub [[f32; 3]; 3]);

impl Mat3 {
    pub fn mul_vec(&self, v: Vec3) -> Vec3 {
        let m = &self.0;
        Vec3::new(
            m[0][0] * v.x + m[0][1] * v.y + m[0][2] * v.z,
            m[1][0] * v.x + m[1][1] * v.y + m[1][2] * v.z,
            m[2][0] * v.x + m[2][1] * v.y + m[2][2] * v.z,
        )
    }

    pub fn mul_mat(&self, o: &Mat3) -> Mat3 {
        let mut r = [[0.0f32; 3]; 3];
        for (i, row) in r.iter_mut().enumerate() {
            for (j, cell) in row.iter_mut().enumerate() {
                *cell =
                    self.0[i][0] * o.0[0][j] + self.0[i][1] * o.0[1][j] + self.0[i][2] * o.0[2][j];
            }
        }
        Mat3(r)
    }

    /// Rotation by `a` radians about the x axis.
    pub fn rot_x(a: f32) -> Mat3 {
        let (s, c) = (libm::sinf(a), libm::cosf(a));
        Mat3([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
    }
    /// Rotation by `a` radians about the y axis.
    pub fn rot_y(a: f32) -> Mat3 {
        let (s, c) = (libm::sinf(a), libm::cosf(a));
        Mat3([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    }
    /// Rotation by `a` radians about the z axis.
    pub fn rot_z(a: f32) -> Mat3 {
        let (s, c) = (libm::sinf(a), libm::cosf(a));
        Mat3([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    }
    /// Blender's XYZ Euler rotation: `Rz(γ) · Ry(β) · Rx(α)` (x applied first).
    pub fn euler_xyz(alpha: f32, beta: f32, gamma: f32) -> Mat3 {
        Mat3::rot_z(gamma)
            .mul_mat(&Mat3::rot_y(beta))
            .mul_mat(&Mat3::rot_x(alpha))
    }
}

/// `smoothstep(0, edge, t)`: 0 below 0, 1 above `edge`, the cubic 3u² − 2u³ between.
pub fn smoothstep(edge: f32, t: f32) -> f32 {
    if t <= 0.0 {
        0.0
    } else if t >= edge {
        1.0
    } else {
        let u = t / edge;
        u * u * (3.0 - 2.0 * u)
    }
}
