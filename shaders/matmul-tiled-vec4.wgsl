// C = A · B with workgroup tiling and vec4 loads, the classic GPU shape
// (as in TF.js's packed vec4 kernel): a W×W workgroup computes a 4W×4W block
// of C, each thread 4 rows × one vec4 column; slices of 4W along K of A and B
// are staged in workgroup memory so each global element is read once per
// workgroup. Workgroup memory: 2 · 4W² vec4 (W = 8: 8 KiB; W = 16: 32 KiB,
// beyond the default 16 KiB limit, so only offered where the adapter allows).
//
// Operands are vec4-packed: K and N must be multiples of 4 (the host pads).

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

override W: u32 = 8u;

var<workgroup> As: array<vec4<f32>, W * W * 4u>; // 4W rows × W vec4 (4W values of K)
var<workgroup> Bs: array<vec4<f32>, W * W * 4u>; // 4W rows of K × W vec4 columns

@compute @workgroup_size(W, W, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let K4 = dims.K / 4u;
  let N4 = dims.N / 4u;
  let tx = lid.x;
  let ty = lid.y;
  let rowBase = wg.y * 4u * W;
  let col4 = wg.x * W + tx;

  var acc: array<vec4<f32>, 4>;
  for (var r = 0u; r < 4u; r++) {
    acc[r] = vec4<f32>(0.0);
  }

  let slices = (K4 + W - 1u) / W;
  for (var s = 0u; s < slices; s++) {
    for (var i = 0u; i < 4u; i++) {
      let local = ty * 4u + i;
      let gRow = rowBase + local;
      let gK4 = s * W + tx;
      var av = vec4<f32>(0.0);
      if (gRow < dims.M && gK4 < K4) {
        av = A[gRow * K4 + gK4];
      }
      As[local * W + tx] = av;

      let gK = s * W * 4u + local;
      var bv = vec4<f32>(0.0);
      if (gK < dims.K && col4 < N4) {
        bv = B[gK * N4 + col4];
      }
      Bs[local * W + tx] = bv;
    }
    workgroupBarrier();

    for (var kk = 0u; kk < W; kk++) {
      let b0 = Bs[(kk * 4u) * W + tx];
      let b1 = Bs[(kk * 4u + 1u) * W + tx];
      let b2 = Bs[(kk * 4u + 2u) * W + tx];
      let b3 = Bs[(kk * 4u + 3u) * W + tx];
      for (var r = 0u; r < 4u; r++) {
        let a = As[(ty * 4u + r) * W + kk];
        acc[r] = fma(vec4<f32>(a.x), b0, fma(vec4<f32>(a.y), b1, fma(vec4<f32>(a.z), b2, fma(vec4<f32>(a.w), b3, acc[r]))));
      }
    }
    workgroupBarrier();
  }

  if (col4 >= N4) {
    return;
  }
  for (var r = 0u; r < 4u; r++) {
    let row = rowBase + ty * 4u + r;
    if (row < dims.M) {
      C[row * N4 + col4] = acc[r];
    }
  }
}
