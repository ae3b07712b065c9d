/** Prints the controller's policy table (docs/controller.md keeps a copy, checked by src/controller/api/api.test.ts). */
import { asyncStateStore, MemoryStateStore } from '../src/common/index.ts';
import { buildControllerApi, Controller, policyTable } from '../src/controller/index.ts';

const { app, routes } = await buildControllerApi(new Controller(asyncStateStore(new MemoryStateStore())));
await app.ready();
process.stdout.write(policyTable(routes) + '\n');
await app.close();
