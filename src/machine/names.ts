/** Docker-style readable container names ("brave_turing") for containers started without --name. */
import { randomInt } from 'node:crypto';

const ADJECTIVES = [
  'brave',
  'calm',
  'eager',
  'fervent',
  'gentle',
  'happy',
  'jolly',
  'keen',
  'lucid',
  'nifty',
  'quirky',
  'serene',
  'sharp',
  'stoic',
  'tender',
  'vivid',
  'wizardly',
  'zealous',
];
const SCIENTISTS = [
  'bohr',
  'curie',
  'dirac',
  'fermi',
  'feynman',
  'hopper',
  'lovelace',
  'meitner',
  'noether',
  'pauli',
  'planck',
  'raman',
  'shannon',
  'turing',
  'wu',
  'yukawa',
];

/** A random adjective_scientist name; callers retry on a collision. */
export function randomContainerName(): string {
  return `${ADJECTIVES[randomInt(ADJECTIVES.length)]}_${SCIENTISTS[randomInt(SCIENTISTS.length)]}`;
}
