/** Public surface of the machine port: the schemas and the Machine interface every edge speaks. */
export * from './schemas.ts';
export { localContext, DEFAULT_VOLUME_BYTES } from './values.ts';
export type * from './machine.ts';
