/**
 * @module models/logreg
 * Binary logistic regression as a gateway job [SC2-5]: plain JavaScript, no imports, run by the
 * enclave runner over one dataset's verified records (and, for a centralized baseline, by
 * {@link runLocally} in this process — the same text, so the same arithmetic).
 *
 * One source serves every step, so a gateway allow-lists one code hash for a whole training:
 * - `mode: "stats"`: per-feature sum and sum of squares over the usable rows, row count and
 *   positive labels (for global standardisation);
 * - `mode: "train"`: `epochs` of mini-batch SGD (L2, shuffled with a seeded PRNG) from the given
 *   weights, on standardised features; returns the new weights, the row count and the loss;
 * - `mode: "evaluate"`: counts of the confusion matrix and the summed log loss.
 *
 * Every output is a handful of numbers: weights and counts only ever leave a gateway.
 *
 * Params: `{ mode, features: string[], label: { column, op, value }, weights?, mean?, std?,
 * epochs?, learningRate?, batchSize?, l2?, seed? }`; `op` is one of eq ne gt ge lt le. A row is
 * usable when the label column and every feature are numbers (not NaN).
 */

/** The job source. */
export const LOGREG_SOURCE = `'use strict';
function prng(seed) {
  // mulberry32: the same sequence in the sandbox and in Node
  let a = seed >>> 0;
  return function () {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
function labelOf(v, spec) {
  switch (spec.op) {
    case 'eq': return v === spec.value ? 1 : 0;
    case 'ne': return v !== spec.value ? 1 : 0;
    case 'gt': return v > spec.value ? 1 : 0;
    case 'ge': return v >= spec.value ? 1 : 0;
    case 'lt': return v < spec.value ? 1 : 0;
    case 'le': return v <= spec.value ? 1 : 0;
    default: throw new Error('label.op: one of eq ne gt ge lt le');
  }
}
function sigmoid(z) {
  return z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z));
}
function table(data, params) {
  const features = params.features;
  if (!Array.isArray(features) || features.length === 0) throw new Error('params.features: a list of numeric columns');
  const spec = params.label;
  if (!spec || typeof spec.column !== 'string') throw new Error('params.label: { column, op, value }');
  const cols = features.map(function (f) {
    const c = data.columns[f];
    if (!c) throw new Error('no column ' + f);
    return c;
  });
  const lab = data.columns[spec.column];
  if (!lab) throw new Error('no column ' + spec.column);
  const d = features.length;
  const x = [];
  const y = [];
  for (let i = 0; i < data.rows; i++) {
    const v = Number(lab[i]);
    if (Number.isNaN(v)) continue;
    const row = new Float64Array(d);
    let ok = true;
    for (let j = 0; j < d; j++) {
      const fv = Number(cols[j][i]);
      if (Number.isNaN(fv)) { ok = false; break; }
      row[j] = fv;
    }
    if (!ok) continue;
    x.push(row);
    y.push(labelOf(v, spec));
  }
  return { x: x, y: y, d: d };
}
function standardize(t, params) {
  const mean = params.mean || new Array(t.d).fill(0);
  const std = params.std || new Array(t.d).fill(1);
  for (const row of t.x) for (let j = 0; j < t.d; j++) row[j] = (row[j] - mean[j]) / (std[j] > 0 ? std[j] : 1);
}
function predict(w, row) {
  let z = w[row.length];
  for (let j = 0; j < row.length; j++) z += w[j] * row[j];
  return sigmoid(z);
}
function logLoss(p, y) {
  const e = 1e-12;
  return -(y * Math.log(p + e) + (1 - y) * Math.log(1 - p + e));
}
function run(data, params) {
  const t = table(data, params);
  const n = t.x.length;
  if (params.mode === 'stats') {
    const sum = new Array(t.d).fill(0);
    const sumSq = new Array(t.d).fill(0);
    let positives = 0;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < t.d; j++) { sum[j] += t.x[i][j]; sumSq[j] += t.x[i][j] * t.x[i][j]; }
      positives += t.y[i];
    }
    return { n: n, positives: positives, sum: sum, sumSq: sumSq };
  }
  standardize(t, params);
  const w = (params.weights || new Array(t.d + 1).fill(0)).slice();
  if (w.length !== t.d + 1) throw new Error('params.weights: features + 1 numbers');
  if (params.mode === 'evaluate') {
    let tp = 0, fp = 0, tn = 0, fn = 0, loss = 0;
    for (let i = 0; i < n; i++) {
      const p = predict(w, t.x[i]);
      loss += logLoss(p, t.y[i]);
      const hat = p >= 0.5 ? 1 : 0;
      if (hat === 1 && t.y[i] === 1) tp++;
      else if (hat === 1) fp++;
      else if (t.y[i] === 0) tn++;
      else fn++;
    }
    return { n: n, tp: tp, fp: fp, tn: tn, fn: fn, loss: loss };
  }
  if (params.mode !== 'train') throw new Error('params.mode: stats, train or evaluate');
  const epochs = params.epochs || 1;
  const lr = params.learningRate || 0.1;
  const batch = Math.max(1, params.batchSize || 32);
  const l2 = params.l2 || 0;
  const rnd = prng(params.seed || 1);
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  const grad = new Float64Array(t.d + 1);
  for (let e = 0; e < epochs; e++) {
    for (let i = n - 1; i > 0; i--) {
      const k = Math.floor(rnd() * (i + 1));
      const tmp = order[i]; order[i] = order[k]; order[k] = tmp;
    }
    for (let s = 0; s < n; s += batch) {
      grad.fill(0);
      const end = Math.min(n, s + batch);
      for (let b = s; b < end; b++) {
        const row = t.x[order[b]];
        const err = predict(w, row) - t.y[order[b]];
        for (let j = 0; j < t.d; j++) grad[j] += err * row[j];
        grad[t.d] += err;
      }
      const m = end - s;
      for (let j = 0; j < t.d; j++) w[j] -= lr * (grad[j] / m + l2 * w[j]);
      w[t.d] -= lr * (grad[t.d] / m);
    }
  }
  let loss = 0;
  for (let i = 0; i < n; i++) loss += logLoss(predict(w, t.x[i]), t.y[i]);
  return { n: n, weights: w, loss: n > 0 ? loss / n : 0 };
}
export { run };
`;

/** Label rule: a row is positive when `column op value`. */
export interface LabelSpec {
  column: string;
  op: 'eq' | 'ne' | 'gt' | 'ge' | 'lt' | 'le';
  value: number;
}

/** Column data as a job sees it: equal-length numeric arrays. */
export interface LocalData {
  rows: number;
  columns: Record<string, ArrayLike<number>>;
}

type RunFn = (data: LocalData & { meta: unknown }, params: unknown) => unknown;
let compiled: RunFn | undefined;

/**
 * Runs {@link LOGREG_SOURCE} in this process (centralized baselines, tests): the module text
 * without its export line, compiled once.
 */
export function runLocally<T>(data: LocalData, params: unknown): T {
  if (!compiled) {
    const body = LOGREG_SOURCE.replace(/\nexport \{ run \};\s*$/, '\n');
    compiled = new Function(`${body}\nreturn run;`)() as RunFn;
  }
  return compiled({ ...data, meta: null }, params) as T;
}
