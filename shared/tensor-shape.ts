/** Shape arithmetic shared by the inference shape inference, the CPU reference and the GPU op host. */

export const shapeSize = (dims: readonly number[]): number => dims.reduce((a, b) => a * b, 1);

/** Row-major strides. */
export function stridesOf(dims: readonly number[]): number[] {
  const s = new Array<number>(dims.length).fill(1);
  for (let i = dims.length - 2; i >= 0; i--) s[i] = s[i + 1]! * dims[i + 1]!;
  return s;
}

/** NumPy broadcasting of two shapes; throws a RangeError naming both when they do not broadcast. */
export function broadcastShapes(a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  return Array.from({ length: n }, (_, i) => {
    const x = a[a.length - n + i] ?? 1;
    const y = b[b.length - n + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) throw new RangeError(`shapes [${a.join(', ')}] and [${b.join(', ')}] do not broadcast`);
    return x === 1 ? y : x;
  });
}

/** "300x200x500" (also × or *) as a matrix-product shape M×K×N, or undefined when it is not one. */
export function parseShapeText(text: string): { m: number; k: number; n: number } | undefined {
  const m = /^(\d+)\s*[x×*]\s*(\d+)\s*[x×*]\s*(\d+)$/i.exec(text.trim());
  return m ? { m: Number(m[1]), k: Number(m[2]), n: Number(m[3]) } : undefined;
}
