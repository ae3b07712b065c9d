/** Public surface of the machine port: the schemas and the Machine interface every edge speaks. */
export * from './schemas.ts';
export type * from './machine.ts';
