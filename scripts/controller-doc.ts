/**
 * Prints the controller's policy table (docs/controller.md keeps a copy, checked by src/controller/api/api.test.ts);
 * with --fleet, the table of the fleet's routes (machines and project containers; checked by
 * test/controller-fleet.test.ts).
 */
import { asyncStore, MemoryStateStore } from '../src/common/index.ts';
import { buildControllerApi, Controller, openFleet, policyTable } from '../src/controller/index.ts';
import { fleetRouteEntries } from '../src/controller/fleet/routes.ts';
import { buildPortApi } from '../src/machine/index.ts';

const ctl = new Controller(asyncStore(new MemoryStateStore()));
if (process.argv.includes('--fleet')) {
  const fleet = await openFleet(ctl.store, ctl.tenants, {
    lostAfterMs: 1000,
    checkIntervalMs: 0,
    checkTimeoutMs: 1000,
    machineApi: async (machine) => {
      const api = await buildPortApi(machine);
      return { server: api.server, close: () => api.close() };
    },
  });
  const { app, routes } = await buildControllerApi(ctl, undefined, fleet.routes);
  await app.ready();
  process.stdout.write(policyTable(fleetRouteEntries(routes)) + '\n');
  await app.close();
  await fleet.close();
} else {
  const { app, routes } = await buildControllerApi(ctl);
  await app.ready();
  process.stdout.write(policyTable(routes) + '\n');
  await app.close();
}
