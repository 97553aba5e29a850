/** A product ready to run again and again on operands already on the GPU: what benchmarks time. */
export interface PreparedMatmul {
  /** Launch C = A·B and resolve when the GPU has finished it. No upload, no readback. */
  run(): Promise<void>;
  /** GPU time of the last run from timestamp queries, or undefined where the device has none. */
  gpuMs?(): Promise<number | undefined>;
  /** C (M×N, row-major) of the last run. */
  read(): Promise<Float32Array>;
  dispose(): Promise<void>;
}

