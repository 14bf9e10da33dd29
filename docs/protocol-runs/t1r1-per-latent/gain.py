"""How much gain the inverse of Table 1 row 1's mixing needs, latent by latent (seed 0).

Reads z.npy (sphere samples) and the finite-difference observations written by the commands
in docs/protocol.md ("Seventh study"), and prints, per latent i, the mean row norm of the
local inverse Jacobian ‖(∂x/∂z)⁻¹‖ row i: how strongly the encoder must amplify the
observation to recover z_i. Needs numpy.
"""
import json
import sys

import numpy as np

n, eps = 2000, 1e-4
x = np.load(sys.argv[1]).reshape(11, n, 10)
jac = np.stack([(x[i + 1] - x[0]) / eps for i in range(10)], axis=2)  # n × out × in
gain = np.linalg.norm(np.linalg.inv(jac), axis=2).mean(0)
sv = np.median(np.linalg.svd(jac, compute_uv=False), 0)
print(json.dumps({"inverse_gain_per_latent": [round(g, 2) for g in gain],
                  "median_local_singular_values": [round(s, 4) for s in sv]}))
