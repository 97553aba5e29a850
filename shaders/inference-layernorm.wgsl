// Layer normalization over the last axes (rows of `row length` values):
// y = (x − mean) / sqrt(var + ε) · scale + bias, one workgroup per row, the
// variance from a second pass over (x − mean) so it cannot go negative.
// WG, scratch and reduce() come from inference-reduce.wgsl, which the host prepends.

@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> Scale: array<f32>;
@group(0) @binding(2) var<storage, read> Bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
@group(0) @binding(4) var<uniform> shape: vec4<f32>; // x: rows, y: row length, z: epsilon, w: 1 when there is a bias

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
  let row = wg.x + wg.y * groups.x;
  let lid = lid3.x;
  let rows = u32(shape.x);
  let n = u32(shape.y);
  let live = row < rows;
  let base = select(0u, row * n, live);
  var s = 0.0;
  for (var j = lid; j < n && live; j += WG) {
    s += X[base + j];
  }
  let mean = reduce(lid, s, false) / f32(n);
  var q = 0.0;
  for (var j = lid; j < n && live; j += WG) {
    let d = X[base + j] - mean;
    q += d * d;
  }
  let inv = inverseSqrt(reduce(lid, q, false) / f32(n) + shape.z);
  for (var j = lid; j < n && live; j += WG) {
    let b = select(0.0, Bias[j], shape.w > 0.5);
    Y[base + j] = (X[base + j] - mean) * inv * Scale[j] + b;
  }
}
