// Y = X with its axes permuted (up to 6): for each output element, its
// input offset from the input strides reordered by the permutation.

struct Layout {
  rank: u32,
  count: u32,
  _pad0: u32,
  _pad1: u32,
  outDims: array<vec4<u32>, 2>,
  inStrides: array<vec4<u32>, 2>, // input stride of the axis that output axis d takes
}

@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Y: array<f32>;
@group(0) @binding(2) var<uniform> L: Layout;

fn at(v: array<vec4<u32>, 2>, i: u32) -> u32 {
  return v[i / 4u][i % 4u];
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let flat = gid.x + gid.y * groups.x * 256u;
  if (flat >= L.count) {
    return;
  }
  var rest = flat;
  var src = 0u;
  for (var d = i32(L.rank) - 1; d >= 0; d--) {
    let dim = at(L.outDims, u32(d));
    src += (rest % dim) * at(L.inStrides, u32(d));
    rest = rest / dim;
  }
  Y[flat] = X[src];
}
