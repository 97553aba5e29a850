// Layer normalization for short rows: one invocation per row, no workgroup
// memory or barriers (see inference-softmax-rows.wgsl for why). Same
// arithmetic as inference-layernorm.wgsl: the variance from a second pass
// over (x − mean), so it cannot go negative.

@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> Scale: array<f32>;
@group(0) @binding(2) var<storage, read> Bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
@group(0) @binding(4) var<uniform> shape: vec4<f32>; // x: rows, y: row length, z: epsilon, w: 1 when there is a bias

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let row = gid.x + gid.y * groups.x * 64u;
  if (row >= u32(shape.x)) {
    return;
  }
  let n = u32(shape.y);
  let base = row * n;
  var s = 0.0;
  for (var j = 0u; j < n; j++) {
    s += X[base + j];
  }
  let mean = s / f32(n);
  var q = 0.0;
  for (var j = 0u; j < n; j++) {
    let d = X[base + j] - mean;
    q += d * d;
  }
  let inv = inverseSqrt(q / f32(n) + shape.z);
  for (var j = 0u; j < n; j++) {
    let b = select(0.0, Bias[j], shape.w > 0.5);
    Y[base + j] = (X[base + j] - mean) * inv * Scale[j] + b;
  }
}
