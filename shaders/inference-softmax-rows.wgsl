// Softmax over the last axis for short rows: one invocation per row, no
// workgroup memory or barriers (each barrier is a fiber switch where GPU
// threads are emulated, as on SwiftShader, and short rows leave a
// workgroup-per-row kernel mostly idle on real GPUs). Stable: the row's
// maximum is subtracted before exp.

@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Y: array<f32>;
@group(0) @binding(2) var<uniform> shape: vec4<u32>; // x: rows, y: row length

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let row = gid.x + gid.y * groups.x * 64u;
  if (row >= shape.x) {
    return;
  }
  let n = shape.y;
  let base = row * n;
  var m = -3.402823e38;
  for (var j = 0u; j < n; j++) {
    m = max(m, X[base + j]);
  }
  var s = 0.0;
  for (var j = 0u; j < n; j++) {
    s += exp(X[base + j] - m);
  }
  let inv = 1.0 / s;
  for (var j = 0u; j < n; j++) {
    Y[base + j] = exp(X[base + j] - m) * inv;
  }
}
