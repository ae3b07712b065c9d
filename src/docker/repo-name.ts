/**
 * Docker's normalisation of a repository name given without a registry ("mine/box" → "docker.io/mine/box",
 * "other" → "docker.io/library/other"), as github.com/distribution/reference ParseNormalizedNamed does it.
 *
 * Why the Docker personality needs it: `docker tag SRC mine/box:v1` sends `repo=mine/box` from the 20.10 CLI
 * (Debian's docker.io, API 1.41) but `repo=docker.io/mine/box` from newer CLIs. Boson's own image store reads a
 * name without a registry as a local one (localhost/…), so the 20.10 CLI's tag used to land on localhost/mine/box
 * and `docker images` listed "localhost/mine/box:v1" where Docker lists "mine/box:v1". Normalising `repo` at the
 * Docker edge gives both CLIs Docker's answer.
 */

/** The fully qualified form of a Docker repository name (no tag or digest). */
export function normalizeDockerRepo(repo: string): string {
  const slash = repo.indexOf('/');
  if (slash < 0) return `docker.io/library/${repo}`;
  const first = repo.slice(0, slash);
  if (first.includes('.') || first.includes(':') || first === 'localhost') return repo;
  return `docker.io/${repo}`;
}
