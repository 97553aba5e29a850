// Numerically stable softmax over the last axis: one workgroup per row,
// subtracting the row's maximum before exp so large logits cannot overflow.
// WG, scratch and reduce() come from inference-reduce.wgsl, which the host prepends.

@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Y: array<f32>;
@group(0) @binding(2) var<uniform> shape: vec4<u32>; // x: rows, y: row length

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
  let row = wg.x + wg.y * groups.x;
  let lid = lid3.x;
  let n = shape.y;
  // Rows past the end still take part in the barriers, with nothing to write.
  let live = row < shape.x;
  let base = select(0u, row * n, live);
  var m = -3.402823e38;
  for (var j = lid; j < n && live; j += WG) {
    m = max(m, X[base + j]);
  }
  m = reduce(lid, m, true);
  var s = 0.0;
  for (var j = lid; j < n && live; j += WG) {
    s += exp(X[base + j] - m);
  }
  s = reduce(lid, s, false);
  for (var j = lid; j < n && live; j += WG) {
    Y[base + j] = exp(X[base + j] - m) / s;
  }
}
