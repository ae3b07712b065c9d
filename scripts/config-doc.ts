/** Prints docs/config.md, the settings table, from SETTINGS in src/main/config.ts. */
import { configDoc } from '../src/main/config.ts';

process.stdout.write(configDoc());
