/** Public surface of src/common: errors, paths. Imports nothing else of Boson's. */
export * from './errors.ts';
export * from './paths.ts';
