// The inference matmul's fast path, for K and N multiples of 4 (most layer
// widths): C[b] = act(A[b] · B[b] + bias), register-blocked like
// matmul-register-vec4.wgsl — each thread keeps ROWS × 8 outputs in
// registers, A and B are read as vec4, no workgroup memory or barriers —
// with the bias and the activation (ACT 0 none, 1 relu, 2 gelu, erf form)
// fused into the store. Batch strides are in floats; 0 broadcasts an operand
// (weights). erf_f32 comes from inference-erf.wgsl, which the host prepends.

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

@group(0) @binding(0) var<storage, read> A: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> B: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> Bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<vec4<f32>>;
@group(0) @binding(4) var<uniform> dims: Dims;

override ACT: u32 = 0u;
const ROWS: u32 = 8u;

fn activate(v: vec4<f32>) -> vec4<f32> {
  switch ACT {
    case 1u: { return max(v, vec4<f32>(0.0)); }
    case 2u: {
      let s = v * 0.70710678118654752;
      return 0.5 * v * (vec4<f32>(1.0) + vec4<f32>(erf_f32(s.x), erf_f32(s.y), erf_f32(s.z), erf_f32(s.w)));
    }
    default: { return v; }
  }
}

fn store(batch: u32, row: u32, c: u32, acc: vec4<f32>) {
  let N4 = dims.N / 4u;
  var v = acc;
  if (dims.hasBias != 0u) {
    v += vec4<f32>(Bias[c * 4u], Bias[c * 4u + 1u], Bias[c * 4u + 2u], Bias[c * 4u + 3u]);
  }
  C[(batch * dims.M + row) * N4 + c] = activate(v);
}

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let batch = gid.z;
  let K4 = dims.K / 4u;
  let N4 = dims.N / 4u;
  let row0 = gid.y * ROWS;
  if (batch >= dims.batches || row0 >= dims.M || gid.x * 2u >= N4) {
    return;
  }
  let aBase = batch * dims.aBatchStride / 4u;
  let bBase = batch * dims.bBatchStride / 4u;
  let c0 = gid.x * 2u;
  let c1 = min(c0 + 1u, N4 - 1u);

  var acc0: array<vec4<f32>, ROWS>;
  var acc1: array<vec4<f32>, ROWS>;
  var rowOffset: array<u32, ROWS>;
  for (var r = 0u; r < ROWS; r++) {
    rowOffset[r] = aBase + min(row0 + r, dims.M - 1u) * K4;
  }
  for (var k4 = 0u; k4 < K4; k4++) {
    let bo = bBase + k4 * 4u * N4;
    let b00 = B[bo + c0];
    let b01 = B[bo + N4 + c0];
    let b02 = B[bo + 2u * N4 + c0];
    let b03 = B[bo + 3u * N4 + c0];
    let b10 = B[bo + c1];
    let b11 = B[bo + N4 + c1];
    let b12 = B[bo + 2u * N4 + c1];
    let b13 = B[bo + 3u * N4 + c1];
    for (var r = 0u; r < ROWS; r++) {
      let a = A[rowOffset[r] + k4];
      acc0[r] = fma(vec4<f32>(a.x), b00, fma(vec4<f32>(a.y), b01, fma(vec4<f32>(a.z), b02, fma(vec4<f32>(a.w), b03, acc0[r]))));
      acc1[r] = fma(vec4<f32>(a.x), b10, fma(vec4<f32>(a.y), b11, fma(vec4<f32>(a.z), b12, fma(vec4<f32>(a.w), b13, acc1[r]))));
    }
  }
  for (var r = 0u; r < ROWS; r++) {
    let row = row0 + r;
    if (row >= dims.M) {
      break;
    }
    store(batch, row, c0, acc0[r]);
    if (c0 + 1u < N4) {
      store(batch, row, c0 + 1u, acc1[r]);
    }
  }
}
