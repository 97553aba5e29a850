// C = A · B sharing A through subgroup shuffles instead of workgroup memory.
// All threads of a workgroup compute the same ROWS rows, each one vec4 column
// of C. For every run of subgroup-size values along K, lane l loads
// A[row][k0 + l] for each row, and the subgroup passes them round with
// subgroupShuffle, so A is read once per subgroup with no barrier. Used only
// where the adapter has the `subgroups` feature.
//
// B and C are vec4-packed: N must be a multiple of 4 (the host pads); any K.

enable subgroups;

struct Dims {
  M: u32,
  K: u32,
  N: u32, // padded to a multiple of 4
  _pad: u32,
}

@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> C: array<vec4<f32>>;
@group(0) @binding(3) var<uniform> dims: Dims;

override WG: u32 = 64u;
override ROWS: u32 = 8u; // at most MAX_ROWS
const MAX_ROWS: u32 = 8u;

@compute @workgroup_size(WG, 1, 1)
fn main(
  @builtin(global_invocation_id) gid: vec3<u32>,
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(subgroup_invocation_id) lane: u32,
  @builtin(subgroup_size) sgSize: u32,
) {
  let N4 = dims.N / 4u;
  // Threads past the last column still take part: the shuffles need every lane.
  let col4 = min(gid.x, N4 - 1u);
  let row0 = wg.y * ROWS;

  var acc: array<vec4<f32>, MAX_ROWS>;
  var rowOffset: array<u32, MAX_ROWS>;
  for (var r = 0u; r < ROWS; r++) {
    acc[r] = vec4<f32>(0.0);
    rowOffset[r] = min(row0 + r, dims.M - 1u) * dims.K;
  }

  for (var k0 = 0u; k0 < dims.K; k0 += sgSize) {
    var mine: array<f32, MAX_ROWS>;
    let k = min(k0 + lane, dims.K - 1u);
    for (var r = 0u; r < ROWS; r++) {
      mine[r] = A[rowOffset[r] + k];
    }
    let run = min(sgSize, dims.K - k0);
    for (var j = 0u; j < run; j++) {
      let b = B[(k0 + j) * N4 + col4];
      for (var r = 0u; r < ROWS; r++) {
        acc[r] = fma(vec4<f32>(subgroupShuffle(mine[r], j)), b, acc[r]);
      }
    }
  }

  if (gid.x >= N4) {
    return;
  }
  for (var r = 0u; r < ROWS; r++) {
    let row = row0 + r;
    if (row < dims.M) {
      C[row * N4 + gid.x] = acc[r];
    }
  }
}
