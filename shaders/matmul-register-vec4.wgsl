// C = A · B with register blocking and no workgroup memory: each thread keeps
// ROWS × 8 outputs (two vec4 columns) in registers and streams A and B as
// vec4 loads. Without barriers or shared staging, this is the shape that
// wins where "GPU" threads are CPU SIMD lanes (SwiftShader, llvmpipe) and on
// GPUs whose caches serve the reuse that workgroup memory would.
//
// Operands are vec4-packed: K and N must be multiples of 4. The host pads
// them with zeros when they are not (MatmulKernel does), so any M, K, N runs.
// Rows and columns past the matrix are clamped on load and skipped on store.

struct Dims {
  M: u32,
  K: u32, // padded to a multiple of 4
  N: u32, // padded to a multiple of 4
  _pad: u32,
}

@group(0) @binding(0) var<storage, read> A: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> B: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> C: array<vec4<f32>>;
@group(0) @binding(3) var<uniform> dims: Dims;

override WG_X: u32 = 8u;
override WG_Y: u32 = 8u;
override ROWS: u32 = 8u; // rows per thread, at most MAX_ROWS
const MAX_ROWS: u32 = 8u;

@compute @workgroup_size(WG_X, WG_Y, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let K4 = dims.K / 4u;
  let N4 = dims.N / 4u;
  // The two vec4 columns are adjacent, so a thread's B loads share cache lines.
  let c0 = min(gid.x * 2u, N4 - 1u);
  let c1 = min(gid.x * 2u + 1u, N4 - 1u);
  let row0 = gid.y * ROWS;

  var acc0: array<vec4<f32>, MAX_ROWS>;
  var acc1: array<vec4<f32>, MAX_ROWS>;
  var rowOffset: array<u32, MAX_ROWS>;
  for (var r = 0u; r < ROWS; r++) {
    acc0[r] = vec4<f32>(0.0);
    acc1[r] = vec4<f32>(0.0);
    rowOffset[r] = min(row0 + r, dims.M - 1u) * K4;
  }

  for (var k4 = 0u; k4 < K4; k4++) {
    let bo = k4 * 4u * N4;
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
    if (gid.x * 2u < N4) {
      C[row * N4 + gid.x * 2u] = acc0[r];
    }
    if (gid.x * 2u + 1u < N4) {
      C[row * N4 + gid.x * 2u + 1u] = acc1[r];
    }
  }
}
