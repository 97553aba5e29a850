// Z = A op B with NumPy broadcasting, op chosen by the OP override:
// 0 add, 1 sub, 2 mul, 3 div, 4 pow. Up to 6 dimensions: each operand has
// its strides in the output's index space, 0 where it is broadcast.
// Most operands in models are the output's shape, a scalar, or a trailing
// block (a bias): for those (A_MOD / B_MOD = 1) the index is the flat index
// modulo the operand's size, which spares the per-dimension divisions that
// dominate this kernel where integer division is slow (SwiftShader).

struct Layout {
  rank: u32,
  count: u32,
  aSize: u32,
  bSize: u32,
  outDims: array<vec4<u32>, 2>, // 6 used, row-major
  aStrides: array<vec4<u32>, 2>,
  bStrides: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read_write> Z: array<f32>;
@group(0) @binding(3) var<uniform> L: Layout;

override OP: u32 = 0u;
override A_MOD: u32 = 0u;
override B_MOD: u32 = 0u;

fn at(v: array<vec4<u32>, 2>, i: u32) -> u32 {
  return v[i / 4u][i % 4u];
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let flat = gid.x + gid.y * groups.x * 256u;
  if (flat >= L.count) {
    return;
  }
  var ia = 0u;
  var ib = 0u;
  if (A_MOD == 0u || B_MOD == 0u) {
    var rest = flat;
    for (var d = i32(L.rank) - 1; d >= 0; d--) {
      let dim = at(L.outDims, u32(d));
      let coord = rest % dim;
      rest = rest / dim;
      ia += coord * at(L.aStrides, u32(d));
      ib += coord * at(L.bStrides, u32(d));
    }
  }
  if (A_MOD == 1u) {
    ia = flat % L.aSize;
  }
  if (B_MOD == 1u) {
    ib = flat % L.bSize;
  }
  let a = A[ia];
  let b = B[ib];
  var z: f32;
  switch OP {
    case 1u: { z = a - b; }
    case 2u: { z = a * b; }
    case 3u: { z = a / b; }
    case 4u: { z = pow(abs(a), b) * select(1.0, select(1.0, -1.0, a < 0.0), fract(b * 0.5) != 0.0 && fract(b) == 0.0); }
    default: { z = a + b; }
  }
  Z[flat] = z;
}
