// C = A · B, one output per thread: the textbook kernel, kept as the
// benchmark's baseline. Every thread reads a whole row of A and column of B
// from global memory, so it is bound by memory traffic on any device.

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

override WG_X: u32 = 16u;
override WG_Y: u32 = 16u;

@compute @workgroup_size(WG_X, WG_Y, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let row = gid.y;
  let col = gid.x;
  if (row >= dims.M || col >= dims.N) {
    return;
  }
  var acc = 0.0;
  for (var k = 0u; k < dims.K; k++) {
    acc = fma(A[row * dims.K + k], B[k * dims.N + col], acc);
  }
  C[row * dims.N + col] = acc;
}
