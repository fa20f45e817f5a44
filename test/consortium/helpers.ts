/**
 * @module test/consortium/helpers
 * Shared pieces of the consortium tests: {@link describeEtcd} (skip loudly without etcd, fail
 * with CI=true), a three-operator PKI and genesis configuration, and signed endorsement
 * transactions made with real AS keys.
 */
import { describe, it } from 'vitest';
import { ETCD_BIN, etcdInstalled } from '../../as-node/src/ledger/consortium/etcd-cluster.ts';

/**
 * `describe` for suites that need etcd: runs them when it is installed; otherwise skips with a
 * warning — or, with CI=true, replaces them with one failing test.
 */
export function describeEtcd(name: string, fn: () => void): void {
  if (etcdInstalled()) {
    describe(name, fn);
    return;
  }
  if (process.env.CI === 'true') {
    describe(name, () => {
      it(`needs ${ETCD_BIN} (etcd-server): with CI=true a missing etcd fails instead of skipping`, () => {
        throw new Error(`${ETCD_BIN} not found: install Debian's etcd-server (.ci/run does)`);
      });
    });
    return;
  }
  console.warn(`\n*** SKIPPING "${name}": ${ETCD_BIN} not found (apt-get install etcd-server); with CI=true this fails ***\n`);
  describe.skip(name, fn);
}
