// Mean of each row (ReduceMean over trailing axes; the host moves the reduced
// axes last first): one workgroup per row.
// WG, scratch and reduce() come from inference-reduce.wgsl, which the host prepends.

@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Y: array<f32>;
@group(0) @binding(2) var<uniform> shape: vec4<u32>; // x: rows, y: row length

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
  let row = wg.x + wg.y * groups.x;
  let lid = lid3.x;
  let n = shape.y;
  let live = row < shape.x;
  let base = select(0u, row * n, live);
  var s = 0.0;
  for (var j = lid; j < n && live; j += WG) {
    s += X[base + j];
  }
  s = reduce(lid, s, false);
  if (live && lid == 0u) {
    Y[row] = s / f32(n);
  }
}
