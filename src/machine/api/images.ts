/**
 * The image routes of the machine's REST API, over the port's MachineImages. A reference in a path is one segment,
 * URL-encoded (`localhost%2Fbusybox%3Alatest`): names hold slashes. A pull streams NDJSON (`{progress}` lines,
 * then `{result}`, or `{error}` with the problem that ended it once the stream had begun; an error before the
 * first line is an ordinary problem answer). An import reads a tar body (a `docker save` archive or an OCI layout
 * packed as a tar), or a directory or tar on the machine's own host named by `path` (read as the daemon's user,
 * as bind mounts are: whoever may use the socket may use both).
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import path from 'node:path';
import { BosonError } from '../../common/index.ts';
import type { MachineImages } from '../port/machine.ts';
import {
  Image,
  ImageInspect,
  ImagePruneResult,
  ImagePullRequest,
  ImagePullStreamItem,
  ImageRemoveResult,
  Problem,
  type RequestContext,
} from '../port/schemas.ts';
import { problemOf } from './routing.ts';

const RefParams = Type.Object({ ref: Type.String({ description: 'image name, id or id prefix, URL-encoded' }) });
const TagQuery = Type.Object({ name: Type.String({ minLength: 1, description: 'the new name[:tag]' }) });
const RemoveQuery = Type.Object({
  force: Type.Optional(Type.String({ description: '1 or true: remove even if a container uses the image' })),
});
const ImportQuery = Type.Object({
  path: Type.Optional(
    Type.String({ description: "an absolute path on the machine's host (OCI layout directory or tar); instead of a body" }),
  ),
  tag: Type.Optional(Type.String({ description: 'name the imported image (the source must hold one)' })),
});
const errors = { '4xx': Problem, '5xx': Problem };
const TAR_TYPES = ['application/x-tar', 'application/octet-stream'];

const boolQuery = (v: unknown): boolean => v === true || v === '1' || v === 'true';

/** The image routes over `images`; `context` makes a request's RequestContext. */
export function imageRoutes(
  images: MachineImages,
  context: (req: { id: string; headers: Record<string, string | string[] | undefined> }) => RequestContext,
): FastifyPluginAsync {
  return async (app: FastifyInstance) => {
    // A tar body is read as a stream (the API's body limit is for JSON).
    app.addContentTypeParser(TAR_TYPES, (_req, payload, done) => done(null, payload));

    app.get(
      '/v1/images',
      { schema: { tags: ['images'], summary: 'List images', response: { 200: Type.Array(Image), ...errors } } },
      async (req) => images.list(context(req)),
    );

    app.post<{ Body: ImagePullRequest }>(
      '/v1/images/pull',
      {
        schema: {
          tags: ['images'],
          summary: 'Pull an image; the answer is a stream of NDJSON lines',
          body: ImagePullRequest,
          response: {
            200: {
              description: 'progress lines, then the result (or the error that ended the pull)',
              content: { 'application/x-ndjson': { schema: ImagePullStreamItem } },
            },
            ...errors,
          },
        },
      },
      async (req, reply) => {
        let started = false;
        const line = (item: ImagePullStreamItem): void => {
          if (!started) {
            started = true;
            void reply.hijack();
            reply.raw.writeHead(200, { 'Content-Type': 'application/x-ndjson' });
          }
          // A client that went away does not stop the pull: the image lands in the store.
          if (!reply.raw.destroyed) reply.raw.write(JSON.stringify(item) + '\n');
        };
        try {
          const result = await images.pull(context(req), req.body, (progress) => line({ progress }));
          line({ result });
        } catch (err) {
          if (!started) throw err;
          line({ error: problemOf(err).body as Problem });
        }
        reply.raw.end();
        return reply;
      },
    );

    app.post<{ Querystring: Static<typeof ImportQuery> }>(
      '/v1/images/import',
      {
        schema: {
          tags: ['images'],
          summary: 'Import a docker save archive or an OCI layout (a tar body, or a path on the host)',
          querystring: ImportQuery,
          body: {
            content: {
              'application/x-tar': { schema: { description: 'a docker save archive or an OCI image layout as a tar (gzip allowed)' } },
            },
          },
          response: { 201: Type.Array(Image), ...errors },
        },
      },
      async (req, reply) => {
        const { path: hostPath, tag } = req.query;
        const body = req.body as AsyncIterable<Uint8Array> | undefined;
        let imported: Image[];
        if (hostPath !== undefined) {
          if (!path.isAbsolute(hostPath)) throw new BosonError('INVALID_ARGUMENT', `import path must be absolute: ${hostPath}`);
          imported = await images.import(context(req), { path: hostPath }, { tag });
        } else if (body && typeof body === 'object' && Symbol.asyncIterator in body) {
          imported = await images.import(context(req), { tar: body }, { tag });
        } else {
          throw new BosonError('INVALID_ARGUMENT', `import needs a tar body (Content-Type ${TAR_TYPES[0]}) or ?path=`);
        }
        return reply.code(201).send(imported);
      },
    );

    app.post(
      '/v1/images/prune',
      {
        schema: {
          tags: ['images'],
          summary: 'Remove images without names and what no image needs',
          response: { 200: ImagePruneResult, ...errors },
        },
      },
      async (req) => images.prune(context(req)),
    );

    app.get<{ Params: Static<typeof RefParams> }>(
      '/v1/images/:ref',
      { schema: { tags: ['images'], summary: 'Inspect an image', params: RefParams, response: { 200: ImageInspect, ...errors } } },
      async (req) => images.inspect(context(req), req.params.ref),
    );

    app.post<{ Params: Static<typeof RefParams>; Querystring: Static<typeof TagQuery> }>(
      '/v1/images/:ref/tag',
      {
        schema: {
          tags: ['images'],
          summary: 'Give an image another name',
          params: RefParams,
          querystring: TagQuery,
          response: { 201: Image, ...errors },
        },
      },
      async (req, reply) => reply.code(201).send(await images.tag(context(req), req.params.ref, req.query.name)),
    );

    app.delete<{ Params: Static<typeof RefParams>; Querystring: Static<typeof RemoveQuery> }>(
      '/v1/images/:ref',
      {
        schema: {
          tags: ['images'],
          summary: 'Untag a name; the image goes with its last name',
          params: RefParams,
          querystring: RemoveQuery,
          response: { 200: ImageRemoveResult, ...errors },
        },
      },
      async (req) => images.remove(context(req), req.params.ref, { force: boolQuery(req.query.force) }),
    );
  };
}
