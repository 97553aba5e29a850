// Batched C[b] = act(A[b] · B[b] + bias) with the bias (one per column) and
// the activation fused into the store: ACT 0 none, 1 relu, 2 gelu (erf form).
// A batch stride of 0 broadcasts an operand across the batch (weights). Each
// thread computes a 4×4 block of C in registers; any M, K, N. erf_f32 comes
// from inference-erf.wgsl, which the host prepends.

struct Dims {
  M: u32,
  K: u32,
  N: u32,
  batches: u32,
  aBatchStride: u32,
  bBatchStride: u32,
  hasBias: u32,
  _pad: u32,
}

@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read> Bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
@group(0) @binding(4) var<uniform> dims: Dims;

override ACT: u32 = 0u;

fn activate(v: f32) -> f32 {
  switch ACT {
    case 1u: { return max(v, 0.0); }
    case 2u: { return 0.5 * v * (1.0 + erf_f32(v * 0.70710678118654752)); }
    default: { return v; }
  }
}

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let batch = gid.z;
  let row0 = gid.y * 4u;
  let col0 = gid.x * 4u;
  if (batch >= dims.batches || row0 >= dims.M || col0 >= dims.N) {
    return;
  }
  let aBase = batch * dims.aBatchStride;
  let bBase = batch * dims.bBatchStride;
  var acc: array<vec4<f32>, 4>;
  for (var k = 0u; k < dims.K; k++) {
    var b = vec4<f32>(0.0);
    for (var j = 0u; j < 4u; j++) {
      let col = min(col0 + j, dims.N - 1u);
      b[j] = B[bBase + k * dims.N + col];
    }
    for (var i = 0u; i < 4u; i++) {
      let row = min(row0 + i, dims.M - 1u);
      acc[i] = fma(vec4<f32>(A[aBase + row * dims.K + k]), b, acc[i]);
    }
  }
  let cBase = batch * dims.M * dims.N;
  for (var i = 0u; i < 4u; i++) {
    let row = row0 + i;
    if (row >= dims.M) {
      break;
    }
    for (var j = 0u; j < 4u; j++) {
      let col = col0 + j;
      if (col < dims.N) {
        let bias = select(0.0, Bias[col], dims.hasBias != 0u);
        C[cBase + row * dims.N + col] = activate(acc[i][j] + bias);
      }
    }
  }
}
