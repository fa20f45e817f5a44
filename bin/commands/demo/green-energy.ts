/**
 * @module commands/demo/green-energy
 * The consumer job of the demo (use case I.2): "green energy per region". The certificate
 * issuer sends this JavaScript to each aggregator gateway; the gateway runs it in its enclave
 * runner over the verified smart-meter readings only, once per region (the gateway groups the
 * rows itself with `groupBy: ['region']` and never runs a region with fewer distinct meters than
 * its aggregation threshold), and returns only the per-region sums with a signed attestation
 * [SC2-4].
 *
 * The job sees typed columns (`data.columns.pvKWh` …, NaN when a reading lacks the field) and
 * returns two numbers per region, so its output is an aggregate by construction.
 */

/** The job source: ES module text exporting `run(data, params)`. */
export const GREEN_ENERGY_SOURCE = `// green energy per region: solar production and energy fed into the grid, summed
export function run(data, params) {
  const digits = params && Number.isInteger(params.digits) ? params.digits : 3;
  const f = 10 ** digits;
  const pv = data.columns.pvKWh;
  const exported = data.columns.exportKWh;
  let solar = 0;
  let fedIn = 0;
  for (let i = 0; i < data.rows; i++) {
    if (!Number.isNaN(pv[i])) solar += pv[i];
    if (!Number.isNaN(exported[i])) fedIn += exported[i];
  }
  return { solarKWh: Math.round(solar * f) / f, exportedKWh: Math.round(fedIn * f) / f };
}
`;

/** What the job returns for one region. */
export interface GreenEnergy {
  solarKWh: number;
  exportedKWh: number;
}

/** The payload fields the gateway groups by. */
export const GREEN_ENERGY_GROUP_BY = ['region'];
