import type { RequestHandler } from 'express';
import { looksLikeApiKey } from '../auth/api-keys';
import { sha256Hex } from '../sha256';
import type { ApiKeyRecord, Store } from '../store/store';
import { HttpError } from './http-error';

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Locals {
      apiKey?: ApiKeyRecord;
      requestId?: string;
      /** The job a request created or touched, for the request log line. */
      jobId?: string;
    }
  }
}

/** `Authorization: Bearer <key>`; sets res.locals.apiKey or answers 401. */
export function requireApiKey(store: Store): RequestHandler {
  return async (req, res, next) => {
    const header = req.get('authorization') ?? '';
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    res.set('WWW-Authenticate', 'Bearer realm="tessera"');
    if (!match) {
      throw new HttpError(401, 'UNAUTHORIZED', 'send your API key as "Authorization: Bearer <key>" (a local start saves one in data/local-api-key)');
    }
    const secret = match[1]!;
    const key = looksLikeApiKey(secret) ? await store.findApiKeyByHash(sha256Hex(secret)) : undefined;
    if (!key) throw new HttpError(401, 'UNAUTHORIZED', 'this API key is not valid (mistyped, or revoked)');
    res.removeHeader('WWW-Authenticate');
    res.locals.apiKey = key;
    next();
  };
}

export function apiKeyOf(res: { locals: { apiKey?: ApiKeyRecord } }): ApiKeyRecord {
  const key = res.locals.apiKey;
  if (!key) throw new Error('requireApiKey must run first');
  return key;
}
