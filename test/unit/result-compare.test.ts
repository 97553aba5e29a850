import { describe, expect, it } from 'vitest';
import { replicaTolerance, resultsAgree } from '../../shared/result-compare';
import { classMatrices, DATA_CLASSES, productRows, SUMMATION_ORDERS } from '../support/float32-orders';

describe('comparing two contributors’ matmul tiles', () => {
  it('finds every pair of honest summation orders in agreement, for every data class', () => {
    const [rows, k, cols] = [3, 1024, 24];
    for (const data of DATA_CLASSES) {
      const { a, b } = classMatrices(data, rows, k, cols, 11);
      const results = SUMMATION_ORDERS.map((o) => productRows(o, a, b, [0, 1, 2], k, cols));
      for (let x = 0; x < results.length; x++)
        for (let y = x + 1; y < results.length; y++) expect(resultsAgree(results[x]!, results[y]!, k, cols), `${data}: ${SUMMATION_ORDERS[x]!.id} vs ${SUMMATION_ORDERS[y]!.id}`).toBe(true);
    }
  });

  it('judges each row by its own magnitude, so a small row cannot hide a change the size of a large row’s rounding', () => {
    const cols = 16;
    const x = new Float32Array(2 * cols);
    x.fill(1000, 0, cols); // row 0 large
    x.fill(1, cols); // row 1 small
    const y = x.slice();
    y[cols + 3]! += 1000 * replicaTolerance(256) * 0.5; // within a floor set by the whole tile, 500× row 1's own
    expect(resultsAgree(x, y, 256)).toBe(true);
    expect(resultsAgree(x, y, 256, cols)).toBe(false);
  });

  it('tells a 10⁻³ relative change, a tile of all 42.0 and NaN apart from rounding', () => {
    const { a, b } = classMatrices('uniform', 2, 512, 32, 3);
    const c = productRows(SUMMATION_ORDERS[0]!, a, b, [0, 1], 512, 32);
    const changed = c.slice();
    changed[5]! *= 1.001;
    expect(resultsAgree(c, changed, 512, 32)).toBe(false);
    expect(resultsAgree(c, new Float32Array(c.length).fill(42), 512, 32)).toBe(false);
    const nan = c.slice();
    nan[0] = NaN;
    expect(resultsAgree(nan, nan, 512, 32)).toBe(false);
  });
});
