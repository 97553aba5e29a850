// y = f(x) element-wise, f chosen by the OP override: 0 identity, 1 relu,
// 2 sigmoid, 3 tanh, 4 sqrt, 5 erf, 6 gelu (erf form), 7 gelu (tanh form).
// erf_f32 comes from inference-erf.wgsl, which the host prepends.

@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Y: array<f32>;
@group(0) @binding(2) var<uniform> count: vec4<u32>; // x: elements

override OP: u32 = 0u;

fn apply(v: f32) -> f32 {
  switch OP {
    case 1u: { return max(v, 0.0); }
    case 2u: { return 1.0 / (1.0 + exp(-v)); }
    case 3u: { return tanh(clamp(v, -15.0, 15.0)); }
    case 4u: { return sqrt(v); }
    case 5u: { return erf_f32(v); }
    case 6u: { return 0.5 * v * (1.0 + erf_f32(v * 0.70710678118654752)); }
    case 7u: { return 0.5 * v * (1.0 + tanh(clamp(0.7978845608 * (v + 0.044715 * v * v * v), -15.0, 15.0))); }
    default: { return v; }
  }
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  // 2-D dispatch past 65535 workgroups: the flat index spans both dimensions.
  let i = gid.x + gid.y * groups.x * 256u;
  if (i < count.x) {
    Y[i] = apply(X[i]);
  }
}
