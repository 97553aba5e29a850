// Workgroup reductions shared by the row-wise inference kernels (the host
// prepends this file; WGSL has no includes). Every invocation must call
// reduce() the same number of times: it contains barriers.

const WG: u32 = 64u;
var<workgroup> scratch: array<f32, WG>;

fn reduce(lid: u32, v: f32, isMax: bool) -> f32 {
  scratch[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (lid < s) {
      scratch[lid] = select(scratch[lid] + scratch[lid + s], max(scratch[lid], scratch[lid + s]), isMax);
    }
    workgroupBarrier();
  }
  let r = scratch[0];
  workgroupBarrier();
  return r;
}
