// C = A · B for row-major f32 matrices A (M×K), B (K×N), C (M×N).
//
// Each 16×16 workgroup computes a 64×64 block of C: every thread keeps a 4×4
// block of accumulators in registers, and the workgroup stages 64×16 slices of
// A and 16×64 slices of B in workgroup memory, so each global element is read
// once per workgroup instead of once per output. A thread's rows and columns
// are strided by 16 (ty + 16·i, tx + 16·j) so that neighbouring threads read
// neighbouring B elements. Every global access is bounds-checked: M, K and N
// need not be multiples of the tile.

struct Dims {
  M: u32,
  K: u32,
  N: u32,
  _pad: u32,
}

@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
@group(0) @binding(3) var<uniform> dims: Dims;

const WG: u32 = 16u;        // threads per side of the workgroup
const TPT: u32 = 4u;        // outputs per thread per side (the accumulators' array size)
const BLOCK: u32 = 64u;     // WG * TPT: side of the C block a workgroup computes
override TK: u32 = 16u;     // depth of one staged slice: a multiple of 4 (each of the 256 threads loads TK/4 elements)

var<workgroup> As: array<f32, BLOCK * TK>; // BLOCK × TK, row-major
var<workgroup> Bs: array<f32, BLOCK * TK>; // TK × BLOCK, row-major

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let tx = lid.x;
  let ty = lid.y;
  let flat = ty * WG + tx;
  let rowBase = wg.y * BLOCK;
  let colBase = wg.x * BLOCK;

  var acc: array<array<f32, 4>, 4>;
  for (var i = 0u; i < TPT; i++) {
    for (var j = 0u; j < TPT; j++) {
      acc[i][j] = 0.0;
    }
  }

  let slices = (dims.K + TK - 1u) / TK;
  for (var s = 0u; s < slices; s++) {
    let k0 = s * TK;
    // BLOCK·TK elements of each slice, 256 threads: TK/4 loads each.
    for (var l = 0u; l < TK / 4u; l++) {
      let idx = flat + l * 256u;
      let ar = idx / TK;
      let ak = idx % TK;
      let gRow = rowBase + ar;
      let gK = k0 + ak;
      var av = 0.0;
      if (gRow < dims.M && gK < dims.K) {
        av = A[gRow * dims.K + gK];
      }
      As[idx] = av;

      let bk = idx / BLOCK;
      let bc = idx % BLOCK;
      let gBK = k0 + bk;
      let gCol = colBase + bc;
      var bv = 0.0;
      if (gBK < dims.K && gCol < dims.N) {
        bv = B[gBK * dims.N + gCol];
      }
      Bs[idx] = bv;
    }
    workgroupBarrier();

    for (var kk = 0u; kk < TK; kk++) {
      var a: array<f32, 4>;
      var b: array<f32, 4>;
      for (var i = 0u; i < TPT; i++) {
        a[i] = As[(ty + i * WG) * TK + kk];
        b[i] = Bs[kk * BLOCK + tx + i * WG];
      }
      for (var i = 0u; i < TPT; i++) {
        for (var j = 0u; j < TPT; j++) {
          acc[i][j] = fma(a[i], b[j], acc[i][j]);
        }
      }
    }
    workgroupBarrier();
  }

  for (var i = 0u; i < TPT; i++) {
    let row = rowBase + ty + i * WG;
    if (row >= dims.M) {
      continue;
    }
    for (var j = 0u; j < TPT; j++) {
      let col = colBase + tx + j * WG;
      if (col < dims.N) {
        C[row * dims.N + col] = acc[i][j];
      }
    }
  }
}
