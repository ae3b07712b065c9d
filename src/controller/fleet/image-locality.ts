/**
 * Image locality: one spelling under which placement compares the image a container asks for with the images a
 * machine has (the scheduler adds IMAGE_LOCALITY_BONUS when `machine.images` includes `request.image`).
 *
 * A name is spelled by Docker's rules (remoteReference): "busybox", "library/busybox:latest" and
 * "docker.io/library/busybox:latest" are all "docker.io/library/busybox:latest"; a name with a digest is
 * "<registry>/<repository>@<digest>" (its tag, if any, dropped: the digest decides). An image id ("sha256:<hex>")
 * stays as it is. A machine resolves a name without a registry to "localhost/<name>" first, then to Docker Hub's
 * spelling (src/image/reference.ts referenceCandidates), so a machine's "localhost/<name>" image also counts as
 * having "docker.io/…/<name>": what a short name would run there without a pull.
 */
import type { Image } from '../../machine/port/index.ts';
import { remoteReference } from '../../machine/client/index.ts';

const IMAGE_ID = /^sha256:[0-9a-f]{64}$/;

/** The locality key of the image reference `ref` (see the module comment); `ref` itself when it is not a valid name. */
export function imageLocalityKey(ref: string): string {
  const s = ref.trim();
  if (IMAGE_ID.test(s)) return s;
  try {
    const r = remoteReference(s);
    return r.digest !== null ? `${r.name}@${r.digest}` : r.canonical;
  } catch {
    return s;
  }
}

/** The locality keys of the images a machine has (its images' ids, names and repo digests), sorted, without repeats. */
export function machineImageKeys(images: Image[]): string[] {
  const keys = new Set<string>();
  for (const img of images) {
    if (IMAGE_ID.test(img.id)) keys.add(img.id);
    for (const ref of [...img.references, ...(img.repoDigests ?? [])]) {
      keys.add(imageLocalityKey(ref));
      // "localhost/<name>" is what "<name>" resolves to first on that machine (see the module comment).
      if (ref.startsWith('localhost/')) keys.add(imageLocalityKey(ref.slice('localhost/'.length)));
    }
  }
  return [...keys].sort();
}
