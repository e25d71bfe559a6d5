/**
 * Type-level test, checked by `npm run typecheck` (tsconfig includes test/): an app reads
 * `req.meshlet` in node:http and Express handlers without a cast (the public entry augments
 * node:http's IncomingMessage), and its fields have the documented types. Nothing here runs.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Request, Response } from 'express';
import type { FastifyRequest } from 'fastify';
import type { RequestMeshInfo } from '../../src/index.ts';

export function nodeHandler(req: IncomingMessage, res: ServerResponse): void {
  const info: RequestMeshInfo | undefined = req.meshlet;
  const principal: string | undefined = req.meshlet?.requestPrincipal;
  res.end(`${principal ?? 'anonymous'} ${info?.peer?.principal ?? ''}`);
}

export function expressHandler(req: Request, res: Response): void {
  const decision = req.meshlet?.authz?.decision;
  // @ts-expect-error the principal is a string, never a number
  const wrong: number | undefined = req.meshlet?.requestPrincipal;
  res.send(`${decision ?? 'none'} ${String(wrong)}`);
}

// Fastify: the one declaration docs/server.md gives an app for its decorator.
declare module 'fastify' {
  interface FastifyRequest {
    meshlet: RequestMeshInfo | null;
  }
}

export function fastifyHandler(request: FastifyRequest): string {
  return request.meshlet?.requestPrincipal ?? request.raw.meshlet?.requestPrincipal ?? 'anonymous';
}
