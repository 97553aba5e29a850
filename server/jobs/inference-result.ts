import { readFile, writeFile } from 'node:fs/promises';
import { zipSync } from 'fflate';
import { outputsPerSample, perSample, type InferenceSpec } from '../../shared/inference-job';
import { encodeNpy, encodeNpyHeader } from '../../shared/npy';

/**
 * Turns an inference job's assembled rows (batch × outputsPerSample, the
 * matmul-shaped file the tiles were written into) into what numpy.load reads:
 * the single output as .npy with its own shape, or every output as .npz
 * (a stored zip of one .npy per output, keyed by output name).
 */
export function inferenceResultPacker(spec: InferenceSpec): (assembledPath: string, outPath: string) => Promise<void> {
  return async (assembledPath, outPath) => {
    const file = await readFile(assembledPath);
    const width = outputsPerSample(spec);
    const headerBytes = encodeNpyHeader([spec.batch, width]).length;
    const rows = new Float32Array(new Uint8Array(file.subarray(headerBytes)).buffer);
    if (rows.length !== spec.batch * width) throw new Error(`assembled result holds ${rows.length} values, expected ${spec.batch * width}`);
    if (spec.outputs.length === 1) {
      // One output: the rows are already its values in C order; only the header changes.
      const header = encodeNpyHeader(spec.outputs[0]!.dims);
      await writeFile(outPath, Buffer.concat([header, file.subarray(headerBytes)]));
      return;
    }
    const entries: Record<string, Uint8Array> = {};
    let col = 0;
    for (const out of spec.outputs) {
      const size = perSample(out);
      const data = new Float32Array(spec.batch * size);
      for (let r = 0; r < spec.batch; r++) data.set(rows.subarray(r * width + col, r * width + col + size), r * size);
      entries[`${out.name}.npy`] = encodeNpy({ shape: out.dims, data });
      col += size;
    }
    await writeFile(outPath, zipSync(entries, { level: 0 }));
  };
}
